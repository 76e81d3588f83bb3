"""Stage 2: merge per-partition window partials into per-router views."""
