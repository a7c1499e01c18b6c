"""The ``hccprog`` command line (typer): one module per command, the shared printing in ``common``.

``hccprog.cli:main`` is the console entry point; ``app`` is the typer application. Importing a command
module registers its command; the order below is the order of ``hccprog --help``.
"""

# isort: off
from hccprog.cli import validate, synth, baselines, train, importers, propagate, features, predict, explain  # noqa: F401
# isort: on
from hccprog.cli.app import app, main

__all__ = ["app", "main"]
