"""Typed settings shared by every bifrost process."""

from bifrost.config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
