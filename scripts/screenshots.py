"""Screenshots of what users see (a run's report.html, a patient's card.html) with headless
Chromium (Debian: ``apt-get install chromium``), for review before a release.

    .venv/bin/python scripts/screenshots.py runs/os/report.html why/SYN0002/card.html --out shots

Each page is rendered at 1200 px wide and cut into 1800 px tall PNGs (``<name>_<k>.png``), the way
a reader scrolls it; the card is also printed to PDF to check that it fits one A4 page.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)


def screenshot(html: Path, out: Path, *, width: int = 1200, height: int = 1800, max_height: int = 20000) -> list[Path]:
    """PNG tiles of ``html`` (``out/<stem>_<k>.png``) and, for a card, ``out/<stem>.pdf``."""
    from PIL import Image

    exe = chromium()
    if exe is None:
        raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.png"
        _run([*base, f"--window-size={width},{max_height}", f"--screenshot={full}", html.resolve().as_uri()])
        image = Image.open(full).convert("RGB")
    gray = image.convert("L")
    bottom = gray.height
    pixels = gray.load()
    while bottom > 1 and all(pixels[x, bottom - 1] > 250 for x in range(0, gray.width, 8)):
        bottom -= 1  # trim the blank page below the content
    tiles = []
    stem = html.parent.name + "_" + html.stem if html.stem == "card" else html.stem
    for k, top in enumerate(range(0, max(bottom, 1), height)):
        path = out / f"{stem}_{k}.png"
        image.crop((0, top, width, min(top + height, bottom))).save(path)
        tiles.append(path)
    if html.stem == "card":
        _run([*base, f"--print-to-pdf={out / (stem + '.pdf')}", "--no-pdf-header-footer", html.resolve().as_uri()])
    return tiles


def pdf_pages(path: Path) -> int:
    """Pages of a PDF that Chromium printed (counts its page objects)."""
    data = path.read_bytes()
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pages", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("screenshots"))
    args = ap.parse_args()
    for page in args.pages:
        for tile in screenshot(page, args.out):
            print(tile)
        pdf = args.out / f"{page.parent.name}_card.pdf"
        if page.stem == "card" and pdf.exists():
            print(f"{pdf}: {pdf_pages(pdf)} page(s)")


if __name__ == "__main__":
    main()
