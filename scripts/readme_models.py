"""The README's model list, from the registry (its built-in models: ``builtin_model_names()``): writes the block between
``<!-- models:begin -->`` and ``<!-- models:end -->``; ``--check`` exits 1 when the README is out of date
(tests/test_readme.py runs it).

    .venv/bin/python scripts/readme_models.py          # rewrite the block
    .venv/bin/python scripts/readme_models.py --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"


def model_list() -> str:
    """One line per registered model: its name, its input and task, and its summary."""
    from hccprog.models import get_model
    from hccprog.models.registry import builtin_model_names

    lines = []
    for name in builtin_model_names():
        spec = get_model(name)
        lines.append(f"- `{name}` ({spec.input}, {spec.objective}): {spec.summary}")
    return "\n".join(lines)


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{model_list()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's list is not the registry's")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{README}: the model list differs from model_names(); run scripts/readme_models.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
