"""Typed settings of the worker, the CLI, the simulator and the catalog refresher."""

from bifrost.config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
