"""Publishing :class:`~bifrost.schemas.alerts.Alert` records on the ``alerts`` topic."""
