"""Training triggers: the weekly schedule and the degradation rule."""
