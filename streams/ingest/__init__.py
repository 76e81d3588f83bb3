"""Stage 1: decode, validate, dead-letter, and fold inputs into per-partition partials."""
