"""Transitional alias of :mod:`bifrost.router.offpolicy` for modules still being edited elsewhere."""

import sys

from bifrost.router import offpolicy as _moved

sys.modules[__name__] = _moved
