"""The demo space's data: a realistic Segment-spec event generator.

Use `audience_pipeline.demo.generate.generate` (the module is not re-exported here, so that
`audience_pipeline.demo.generate` stays the module) or
`python -m audience_pipeline.demo.generate --events N --out DIR`. The other modules of this
package are its parts (see the docstring of `generate.py`).
"""
