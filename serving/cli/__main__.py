"""``python -m serving.cli``: the same as the ``c2s`` script."""

from serving.cli import app

app()
