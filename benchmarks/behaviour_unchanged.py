"""Check that a structural change changed no number: run the same jobs with a reference checkout and with
this one, and compare what the runs write.

    git worktree add /tmp/ref <commit>          # the reference, e.g. main before the change
    .venv/bin/python benchmarks/behaviour_unchanged.py --reference-src /tmp/ref/src --work /tmp/unchanged

Jobs (each run twice, once per source tree, on the same cohorts):

- the demo: ``synth --patients 40 --seed 0`` then ``train --model crnn --endpoint os --preset cpu`` with the
  oracle score (the README's main job);
- the clinical baselines of that cohort (``baselines --endpoint os``);
- one MRI cohort: ``synth --modality mri --patients 24 --seed 1``, ``train --model dmmgnet --endpoint pfs
  --preset tiny``.

``predictions.csv`` and ``cutoffs.json`` must be byte-identical; ``metrics.json`` too, apart from its
``created`` timestamp and ``hccprog_version``. Prints one line per file and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

FILES = ("predictions.csv", "cutoffs.json", "metrics.json")
VOLATILE = ("created", "hccprog_version")


def _hccprog(src: Path | None, *args: str) -> None:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, "-m", "hccprog", *map(str, args)]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({'reference' if src else 'this checkout'}): {' '.join(cmd)}\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"  {'reference' if src else 'current  '} {args[0]} {args[1] if args[0] == 'synth' else ''} "
          f"({time.perf_counter() - started:.0f} s)", flush=True)


def _metrics(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k not in VOLATILE}


def compare(a: Path, b: Path) -> list[str]:
    """Differences between two run folders in :data:`FILES`."""
    out = []
    for name in FILES:
        fa, fb = a / name, b / name
        if not fa.exists() and not fb.exists():
            continue
        if fa.exists() != fb.exists():
            out.append(f"{name}: only in {'reference' if fa.exists() else 'current'}")
        elif name == "metrics.json":
            if _metrics(fa) != _metrics(fb):
                out.append(f"{name}: differs beyond {', '.join(VOLATILE)}")
        elif fa.read_bytes() != fb.read_bytes():
            out.append(f"{name}: bytes differ")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-src", type=Path, required=True, help="the reference checkout's src/ folder")
    ap.add_argument("--work", type=Path, default=Path("/tmp/hccprog-unchanged"))
    args = ap.parse_args()
    ref = args.reference_src.resolve()
    if not (ref / "hccprog" / "__init__.py").exists():
        raise SystemExit(f"{ref}: not a src/ folder holding hccprog")
    work = args.work
    demo, mri = work / "demo", work / "mri"
    _hccprog(ref, "synth", demo, "--patients", "40", "--seed", "0", "--overwrite")
    _hccprog(ref, "synth", mri, "--modality", "mri", "--patients", "24", "--seed", "1", "--overwrite")
    jobs = {
        "demo train crnn": ("train", demo / "cohort.yaml", "--model", "crnn", "--endpoint", "os", "--preset", "cpu",
                            "--oracle", f"{demo / 'truth.csv'}:log_hazard_os"),
        "demo baselines": ("baselines", demo / "cohort.yaml", "--endpoint", "os"),
        "mri train dmmgnet": ("train", mri / "cohort.yaml", "--model", "dmmgnet", "--endpoint", "pfs",
                              "--preset", "tiny", "--folds", "3"),
    }
    failed = False
    for label, (command, *rest) in jobs.items():
        slug = label.replace(" ", "-")
        runs = {}
        for side, src in (("reference", ref), ("current", None)):
            out = work / "runs" / side / slug
            extra = ["--cache", work / "cache" / side] if command == "train" else []
            _hccprog(src, command, *rest, *extra, "--out", out, "--overwrite")
            runs[side] = out
        diffs = compare(runs["reference"], runs["current"])
        failed |= bool(diffs)
        print(f"{label}: " + ("identical (" + ", ".join(f for f in FILES if (runs['current'] / f).exists())
                              + ")" if not diffs else "; ".join(diffs)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
