"""SQL traits (SPEC 7, `kind: sql`): a read-only SELECT over the run's normalized messages and
declared sources, whose rows become per-entity trait fields (`<key>.<column>`)."""
