"""Speed of `synth` (goal: 200 patients at the CPU demo size in under 120 s) and `validate`.

Usage: python benchmarks/synth_speed.py [--patients 200] [--repeats 3]
Prints medians and the ratio to the goal; writes benchmarks/results/synth_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.synth import SynthConfig, synthesize

GOAL_SECONDS = 120.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth_speed.json")
    args = parser.parse_args()
    synth_s, validate_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            folder = Path(tmp) / f"c{r}"
            t0 = time.perf_counter()
            synthesize(folder, SynthConfig(patients=args.patients, seed=r))
            synth_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = load_cohort(folder / "cohort.yaml")
            validate_s.append(time.perf_counter() - t0)
            assert result.ok
            size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
            print(f"run {r}: synth {synth_s[-1]:.1f} s, validate {validate_s[-1]:.1f} s, {size_mb:.0f} MB")
    med_synth, med_val = statistics.median(synth_s), statistics.median(validate_s)
    payload = {
        "hccprog": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "patients": args.patients,
        "config": SynthConfig(patients=args.patients).model_dump(mode="json", exclude={"workers"}),
        "workers": SynthConfig().workers,
        "repeats": args.repeats,
        "synth_seconds": [round(s, 2) for s in synth_s],
        "synth_median_seconds": round(med_synth, 2),
        "synth_goal_seconds": GOAL_SECONDS,
        "synth_ratio_to_goal": round(med_synth / GOAL_SECONDS, 3),
        "validate_seconds": [round(s, 2) for s in validate_s],
        "validate_median_seconds": round(med_val, 2),
        "cohort_megabytes": round(size_mb, 1),
    }
    ratio = med_synth / GOAL_SECONDS
    print(f"synth median {med_synth:.1f} s for {args.patients} patients "
          f"({ratio:.2f} x the {GOAL_SECONDS:.0f} s goal); validate median {med_val:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, args.out)


if __name__ == "__main__":
    main()
