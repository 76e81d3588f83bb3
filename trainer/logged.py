"""Transitional alias of :mod:`bifrost.storage.logged` for modules still being edited elsewhere."""

import sys

from bifrost.storage import logged as _moved

sys.modules[__name__] = _moved
