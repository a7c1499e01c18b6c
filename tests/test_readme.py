"""The README: its model list is the registry's, its picture exists and is small, its links resolve."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_model_list_is_the_registry_s():
    from hccprog.models.registry import builtin_model_names

    script = runpy.run_path(str(ROOT / "scripts" / "readme_models.py"))
    text = (ROOT / "README.md").read_text()
    assert script["render"](text) == text, "run scripts/readme_models.py"
    listed = re.findall(r"^- `([^`]+)` \(", text.split(script["BEGIN"])[1].split(script["END"])[0], re.M)
    assert listed == builtin_model_names()


def test_the_picture_and_the_links():
    text = (ROOT / "README.md").read_text()
    picture = ROOT / "docs" / "demo.png"
    assert "](docs/demo.png)" in text and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size < 300_000
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(targets) >= 10
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert missing == []
    first = text.split("## The two commands")[0].strip().splitlines()
    assert len([line for line in first if line and not line.startswith("#")]) <= 3  # what it is, in three lines
