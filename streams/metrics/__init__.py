"""Product metrics: per router and arm traffic, rollout gauges, DLQ surges (pure parts + collector)."""
