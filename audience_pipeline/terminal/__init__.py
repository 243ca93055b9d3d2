"""What the command line needs around its commands: logging from -v/-q, progress, one-line errors,
option types. Nothing here computes anything; cli.py wires it to audience_pipeline.service."""
