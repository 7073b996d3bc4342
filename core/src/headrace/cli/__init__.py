"""The ``headrace`` command line (typer and rich). Command modules import heavy code inside commands."""
