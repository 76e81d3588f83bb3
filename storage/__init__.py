"""On-disk formats both sides of the loop read, in one leaf below ``trainer``, ``streams`` and ``client``.

* :mod:`~bifrost.storage.artifact_store`: the versioned, signed artifact store the trainer
  writes and the simulator, the catalog and the CLI read;
* :mod:`~bifrost.storage.dataset`: the full-information evaluation dataset format;
* :mod:`~bifrost.storage.logged`: logged routing events read back from the warehouse.

It imports only the router library (the artifact format), so every package may use it
without importing the trainer or the stream worker.
"""
