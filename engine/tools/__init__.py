"""Command-line verbs, one module per group (see engine/cli.py)."""
