"""The ``director-llm`` command line (typer + rich)."""
