"""`python -m ingest [--config FILE] [--metrics-port N]`: the ingest CLI without the other components' imports."""

from ingest.cli import app

app()
