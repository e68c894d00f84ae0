"""The ``shipyard`` command line (typer + rich)."""
