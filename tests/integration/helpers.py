"""What the integration tests share: the CLI invoked in-process, and the text no expected condition may show."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hccprog.cli import app

runner = CliRunner()

#: The repository root (tests/integration/ is two levels below it).
REPO = Path(__file__).resolve().parents[2]

#: The top-level handler's words for an unexpected exception: an expected condition never shows them.
BUG = "this is a bug in hccprog"


def invoke(*args) -> tuple[int, str]:
    """Run ``hccprog ARGS`` in this process; its exit code and everything it printed."""
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output
