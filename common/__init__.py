"""Small helpers every bifrost package may use: settings machinery, exit codes, atomic writes.

A leaf: nothing here imports another bifrost package, so ``streams``, ``trainer``,
``router`` and the CLI can all share one implementation without importing each other.
"""
