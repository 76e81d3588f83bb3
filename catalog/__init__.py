"""The catalog refresher: provider model lists → normalized entries, snapshots, drift, retraining.

Pure parts (no I/O): :mod:`~bifrost.catalog.normalize` (provider answers → entries),
:mod:`~bifrost.catalog.drift` (merging a refresh into the catalog, drift rules),
:mod:`~bifrost.catalog.schedule` (cron). Shells: :mod:`~bifrost.catalog.http` (provider
requests with retries), :mod:`~bifrost.catalog.adapters` (one per provider API),
:mod:`~bifrost.catalog.snapshots` (the versioned snapshot store),
:mod:`~bifrost.catalog.refresher` (one refresh, end to end) and
:mod:`~bifrost.catalog.service` (``bifrost-opt refresher``: schedules and webhooks).
"""
