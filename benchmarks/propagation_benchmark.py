"""Mask propagation between time points: Dice, time per pair, and what it costs RadCLN.

Part 1 (``--pairs``): on synthetic cohorts that hold true follow-up masks (hccprog's generator and the
independent one, ``independent_cohort.py``), every patient's follow-up scan and its true mask are
displaced by a random rigid + affine transform (translation up to ``--max-mm`` mm, rotation up to
``--max-deg`` degrees about a random axis, scaling and shear up to 3%), on top of the tumor's own change
after TACE; the baseline mask is then propagated onto the displaced follow-up
(:func:`hccprog.preprocessing.register.propagate_mask`, default configuration) and compared with the
displaced true mask. The images are at the generators' own resolution (4 x 4 x 5 mm and 3.5 x 3.5 x 6 mm,
the ``cpu`` preset's preprocessing resolution is 4 x 4 x 5 mm). Reported per cohort: median (quartiles) Dice of
the liver and of the tumor, the tumor's own bound (Dice of the baseline and follow-up tumors in one frame,
which no propagation of the baseline tumor can beat), and seconds per pair.

Part 2 (``--c-index``): the CRNN benchmark cohort (hccprog's generator, 200 patients, seed 0) with every
follow-up displaced as above, trained twice with the ``cpu`` preset and the same 5-fold CV repeated 3
times: once with the displaced true follow-up masks, once without follow-up masks (propagated from the
baseline during preprocessing). Reported: the out-of-fold C of ``crnn+clinical`` (mean over repeats) in
both arms, their difference, and a paired patient-bootstrap CI of the difference on the first repeat.

    .venv/bin/python benchmarks/propagation_benchmark.py --pairs 60 --c-index
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.imaging.readers import read_raw_mask
from hccprog.imaging.volume import Volume
from hccprog.preprocessing.register import dice, from_sitk, propagate_mask, to_sitk
from hccprog.synth import SynthConfig, synthesize

RESULTS = Path(__file__).with_name("results")


def random_transform(rng: np.random.Generator, center, max_mm: float, max_deg: float, affine: float = 0.03):
    """A rigid (translation <= max_mm, rotation <= max_deg about a random axis) + small affine transform."""
    import SimpleITK as sitk

    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(0, max_mm)
    t = sitk.AffineTransform(3)
    t.SetCenter([float(c) for c in center])
    t.SetMatrix((rot @ (np.eye(3) + rng.uniform(-affine, affine, (3, 3)))).ravel().tolist())
    t.SetTranslation(shift.tolist())
    return t


def displace(volume: Volume, transform, *, order: int) -> Volume:
    """``volume`` resampled on its own grid under ``transform`` (output point x samples input at T(x))."""
    import SimpleITK as sitk

    img = to_sitk(volume, np.float32 if order else np.int32)
    background = float(np.min(volume.array)) if order else 0.0
    out = sitk.Resample(img, img, transform, sitk.sitkLinear if order else sitk.sitkNearestNeighbor, background)
    return from_sitk(out)


def _center(volume: Volume):
    return to_sitk(volume, np.float32).TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2 for s in volume.array.shape])


def _cohort(kind: str, seed: int, patients: int, work: Path) -> Path:
    out = work / f"{kind}-{seed}-{patients}"
    if not (out / "cohort.yaml").exists():
        if kind == "hccprog":
            synthesize(out, SynthConfig(patients=patients, seed=seed), overwrite=True)
        else:
            script = Path(__file__).with_name("independent_cohort.py")
            subprocess.run([sys.executable, str(script), str(out), "--patients", str(patients), "--seed",
                            str(seed)], check=True, stdout=subprocess.DEVNULL)
    return out / "cohort.yaml"


def pairs(cohort_file: Path, n: int, seed: int, max_mm: float, max_deg: float) -> list[dict]:
    """Propagate baseline -> displaced follow-up for the first ``n`` patients with two masked time points."""
    cohort = load_cohort(cohort_file).cohort
    rng = np.random.default_rng(seed)
    rows = []
    for p in cohort:
        if len(rows) >= n:
            break
        tps = [t for t in p.timepoints if any(s.mask for s in t.series.values())]
        if len(tps) < 2:
            continue
        base, fu = tps[0], tps[1]
        name = next(s for s in base.series if base.series[s].mask and s in fu.series and fu.series[s].mask)
        src_img, src_mask = base.series[name].load()
        fu_img, fu_mask = fu.series[name].load()
        t = random_transform(rng, _center(fu_img), max_mm, max_deg)
        moved_img, moved_mask = displace(fu_img, t, order=1), displace(fu_mask, t, order=0)
        res = propagate_mask(src_img, src_mask, moved_img)
        rows.append({"patient": p.id, "series": name,
                     "dice_liver": dice(res.mask.array > 0, moved_mask.array > 0),
                     "dice_tumor": dice(res.mask.array == 2, moved_mask.array == 2),
                     "dice_liver_unregistered": dice(src_mask.array > 0, moved_mask.array > 0),
                     "tumor_own_change_bound": dice(src_mask.array == 2, fu_mask.array == 2),
                     "seconds": res.seconds, "ncc_before": res.ncc_before, "ncc_after": res.ncc_after})
        print(f"  {p.id}: liver {rows[-1]['dice_liver']:.3f} tumor {rows[-1]['dice_tumor']:.3f} "
              f"(bound {rows[-1]['tumor_own_change_bound']:.3f}) {res.seconds:.1f} s", flush=True)
    return rows


def _summary(rows: list[dict]) -> dict:
    frame = pd.DataFrame(rows)
    out = {"pairs": len(frame)}
    for col in ("dice_liver", "dice_tumor", "dice_liver_unregistered", "tumor_own_change_bound", "seconds"):
        q = frame[col].quantile([0.25, 0.5, 0.75])
        out[col] = {"median": round(float(q[0.5]), 4), "q25": round(float(q[0.25]), 4),
                    "q75": round(float(q[0.75]), 4)}
    out["seconds"]["max"] = round(float(frame["seconds"].max()), 2)
    known = frame[frame["tumor_own_change_bound"] > 0]
    ratio = known["dice_tumor"] / known["tumor_own_change_bound"]
    out["tumor_dice_to_bound_median"] = round(float(ratio.median()), 4)
    out["tumor_vanished_pairs"] = int((frame["tumor_own_change_bound"] == 0).sum())
    return out


def displaced_cohorts(cohort_file: Path, work: Path, seed: int, max_mm: float, max_deg: float) -> tuple[Path, Path]:
    """Two copies of the cohort with every follow-up displaced: with its displaced true masks, and without
    follow-up masks (to be propagated)."""
    root = cohort_file.parent
    spec = yaml.safe_load(cohort_file.read_text())
    images = pd.read_csv(root / spec["images"], dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    files = work / "displaced"
    files.mkdir(parents=True, exist_ok=True)
    from hccprog.imaging import read_image

    for (pid, tp), group in images.groupby(["patient_id", "timepoint"], sort=False):
        if tp == "baseline":
            continue
        first = read_image(root / group["image"].iloc[0])
        t = random_transform(rng, _center(first), max_mm, max_deg)
        done: dict[str, str] = {}
        for idx, row in group.iterrows():
            out_img = files / f"{pid}_{tp}_{row['series']}.nii.gz"
            nib.save(displace(read_image(root / row["image"]), t, order=1).to_nifti(), out_img)
            images.loc[idx, "image"] = str(out_img)
            if row["mask"]:
                if row["mask"] not in done:
                    out_mask = files / f"{pid}_{tp}_mask.nii.gz"
                    raw = read_raw_mask(root / row["mask"]).to_canonical()
                    moved = displace(Volume(raw.array.astype(np.int32), raw.affine), t, order=0)
                    nib.save(nib.Nifti1Image(moved.array.astype(np.uint8), moved.affine), out_mask)
                    done[row["mask"]] = str(out_mask)
                images.loc[idx, "mask"] = done[row["mask"]]
    for col in ("image", "mask"):
        images[col] = [v if (not v or os.path.isabs(v)) else str(root / v) for v in images[col]]
    arms = []
    for arm in ("true", "propagated"):
        folder = work / f"arm-{arm}"
        folder.mkdir(parents=True, exist_ok=True)
        table = images.copy()
        if arm == "propagated":
            table.loc[table["timepoint"] != "baseline", "mask"] = ""
        table.to_csv(folder / "images.csv", index=False)
        (folder / "cohort.yaml").write_text(yaml.safe_dump({**spec, "clinical": str(root / spec["clinical"]),
                                                            "images": "images.csv"}, sort_keys=False))
        arms.append(folder / "cohort.yaml")
    return arms[0], arms[1]


def _epoch_median(run: Path) -> float:
    secs = [rec["seconds"] for f in sorted((run / "training").glob("fold-*.json"))
            for rec in json.loads(f.read_text())["history"] if "seconds" in rec]
    return round(float(np.median(secs)), 3) if secs else float("nan")


def c_index_arms(work: Path, seed: int, max_mm: float, max_deg: float, reuse: bool = False) -> dict:
    from hccprog.evaluation.bootstrap import paired_bootstrap_difference
    from hccprog.evaluation.survival import harrell_c
    from hccprog.training.config import resolve_config
    from hccprog.training.run import train_run

    cohort_file = _cohort("hccprog", seed, 200, work)
    true_file, prop_file = displaced_cohorts(cohort_file, work, seed + 100, max_mm, max_deg)
    out: dict = {"cohort": f"hccprog synth seed {seed}, 200 patients, follow-ups displaced"}
    runs = {}
    for arm, file in (("true_masks", true_file), ("propagated_masks", prop_file)):
        cohort = load_cohort(file).cohort
        cfg = resolve_config("cpu", n_boot=1000, seed=seed, cv={"folds": 5, "repeats": 3, "seed": seed},
                             training={"seed": seed})
        t0 = time.perf_counter()
        run = work / f"run-{arm}"
        done = (run / "metrics.json").exists() and yaml.safe_load((run / "config.yaml").read_text())["train"] == \
            cfg.model_dump(mode="json")
        if reuse and done:  # the same training already ran in this work folder: read its results
            metrics = json.loads((run / "metrics.json").read_text())
            print(f"  {arm}: reusing {run}", flush=True)
        else:
            _, metrics = train_run(cohort, file, cfg, run, overwrite=True, cache_dir=work / "cache")
        conf = yaml.safe_load((run / "config.yaml").read_text())
        est = metrics["models"]["crnn+clinical"]["harrell_c"]
        out[arm] = {"c_crnn+clinical": [round(est[k], 4) for k in ("value", "ci_lower", "ci_upper")],
                    "c_crnn": round(metrics["models"]["crnn"]["harrell_c"]["value"], 4),
                    "c_clinical_cox": round(metrics["models"]["clinical_cox"]["harrell_c"]["value"], 4),
                    "preprocessing_seconds": conf["preprocessing_stats"]["seconds"],
                    "train_seconds": None if (reuse and done) else round(time.perf_counter() - t0, 1),
                    "epoch_seconds_median": _epoch_median(run)}
        runs[arm] = run
        print(f"  {arm}: crnn+clinical C {est['value']:.4f} ({est['ci_lower']:.4f} to {est['ci_upper']:.4f})",
              flush=True)
    a = pd.read_csv(runs["propagated_masks"] / "predictions.csv", dtype={"patient_id": str})
    b = pd.read_csv(runs["true_masks"] / "predictions.csv", dtype={"patient_id": str})
    outcomes = pd.read_csv(runs["true_masks"] / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    ra = a[a["model"] == "crnn+clinical"].set_index("patient_id")["risk"]
    rb = b[b["model"] == "crnn+clinical"].set_index("patient_id")["risk"]
    ids = sorted(set(ra.index) & set(rb.index) & set(outcomes.index))
    t, e = outcomes.loc[ids, "time"].to_numpy(float), outcomes.loc[ids, "event"].to_numpy(int)
    xa, xb = ra.loc[ids].to_numpy(float), rb.loc[ids].to_numpy(float)
    diff, p = paired_bootstrap_difference(lambda ix: harrell_c(t[ix], e[ix], xa[ix]),
                                          lambda ix: harrell_c(t[ix], e[ix], xb[ix]), len(ids), n_boot=1000, seed=0)
    out["difference_propagated_minus_true"] = round(out["propagated_masks"]["c_crnn+clinical"][0]
                                                   - out["true_masks"]["c_crnn+clinical"][0], 4)
    out["first_repeat_paired_bootstrap"] = {"difference": round(diff.value, 4), "ci_lower": round(diff.lower, 4),
                                            "ci_upper": round(diff.upper, 4), "p": round(p, 4),
                                            "patients": len(ids)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=60, help="pairs per cohort (0: skip part 1)")
    ap.add_argument("--cohorts", nargs="+", default=["hccprog:0", "independent:0"])
    ap.add_argument("--max-mm", type=float, default=20.0)
    ap.add_argument("--max-deg", type=float, default=10.0)
    ap.add_argument("--c-index", action="store_true", help="part 2: crnn+clinical with true vs propagated masks")
    ap.add_argument("--work", type=Path, default=None, help="keep the cohorts and runs here")
    ap.add_argument("--reuse", action="store_true", help="part 2: read runs already trained in --work with the "
                                                         "same configuration instead of training again")
    ap.add_argument("--out", type=Path, default=RESULTS / "propagation.json")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hccprog-prop-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"benchmark": "propagation", "hccprog_version": __version__, "machine": platform.machine(),
                    "cpus": os.cpu_count(), "max_mm": args.max_mm, "max_deg": args.max_deg,
                    "goals": {"dice_liver_median": ">= 0.90", "dice_tumor_median": ">= 0.70",
                              "seconds_per_pair": "<= 30", "c_crnn+clinical_propagated_vs_true": "within 0.02"},
                    "pairs": {}}
    if args.out.exists():  # keep the part this call does not run
        old = json.loads(args.out.read_text())
        result["pairs"] = old.get("pairs", {}) if not args.pairs else {}
        if not args.c_index and "c_index" in old:
            result["c_index"] = old["c_index"]
    for item in args.cohorts if args.pairs else []:
        kind, seed = item.split(":")
        print(f"{item}: {args.pairs} pairs", flush=True)
        rows = pairs(_cohort(kind, int(seed), max(args.pairs + 20, 60), work), args.pairs, int(seed) + 1000,
                     args.max_mm, args.max_deg)
        s = _summary(rows)
        result["pairs"][item] = s
        print(f"{item}: liver Dice median {s['dice_liver']['median']:.3f}, tumor {s['dice_tumor']['median']:.3f} "
              f"(own-change bound {s['tumor_own_change_bound']['median']:.3f}), "
              f"{s['seconds']['median']:.1f} s per pair (max {s['seconds']['max']:.1f})", flush=True)
    if args.c_index:
        print("CRNN benchmark cohort: true vs propagated follow-up masks", flush=True)
        result["c_index"] = c_index_arms(work, 0, args.max_mm, args.max_deg, reuse=args.reuse)
        print(json.dumps(result["c_index"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
