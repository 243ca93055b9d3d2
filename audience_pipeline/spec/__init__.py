"""The YAML layer: models, loader, expression parsing and validation rules."""
