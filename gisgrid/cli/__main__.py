"""``python -m gisgrid.cli``: the ``gisgrid`` command."""

from gisgrid.cli import app

app()
