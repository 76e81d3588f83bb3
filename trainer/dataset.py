"""Transitional alias of :mod:`bifrost.storage.dataset` for modules still being edited elsewhere."""

import sys

from bifrost.storage import dataset as _moved

sys.modules[__name__] = _moved
