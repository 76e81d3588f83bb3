"""Transitional alias of :mod:`bifrost.storage.artifact_store` for modules still being edited elsewhere."""

import sys

from bifrost.storage import artifact_store as _moved

sys.modules[__name__] = _moved
