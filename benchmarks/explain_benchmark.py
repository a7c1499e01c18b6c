"""Faithfulness of the saliency maps on synthetic cohorts, whose truth knows where the signal is.

For each cohort (hccprog's CT generator, seed 0, and the independent generator's, seed 0) and each
network (``crnn``, 2D; ``progswin``, 3D; preset ``cpu``), the network is fitted once on 160
patients and its Grad-CAM++ maps are computed for the 40 held-out patients on the model's own
input. The generators put the imaging hazard in the tumor (its size, its change after TACE, its
enhancement), so a faithful map puts its mass there. Per patient, on the input the model reads:

* the share of the positive saliency mass inside the tumor plus a margin (2 pixels), and its ratio
  to the tumor-plus-margin share of the input area or volume (a uniform map scores 1x), and the
  share inside the liver;
* the pointing game: whether the maximum of the map falls inside the tumor plus margin;
* deletion: the absolute change of the risk when the 10 % most salient pixels are set to zero,
  against the mean change when the same mask is moved to 5 random places (circular shifts).

Also the held-out C-index of the fitted network (a map of a model that learned nothing says
nothing), and seconds to explain one patient: the fitted ``cpu`` models, and the paper-size
configurations with random weights (the time does not depend on the weights): CRNN with
EfficientNet-b0 on 224 x 224 slices, ProgSwin-UNETR on 3 x 128^3.

    .venv/bin/python benchmarks/explain_benchmark.py            # both cohorts, both models (~40 min)
    .venv/bin/python benchmarks/explain_benchmark.py --cohorts hccprog-ct:0 --models crnn
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_dilation

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.evaluation.survival import harrell_c
from hccprog.explain.geometry import LIVER_CHANNEL, TUMOR_CHANNEL
from hccprog.explain.saliency import grad_cam
from hccprog.models.registry import get_model
from hccprog.preprocessing.cache import preprocess_cohort
from hccprog.preprocessing.slices import patient_slice_geometry
from hccprog.preprocessing.volumes import patient_volume_geometry
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.config import resolve_config
from hccprog.training.learners import DeepLearner

HERE = Path(__file__).parent
RESULTS = HERE / "results"
GOALS = {"tumor_mass_ratio": ">= 2 (a uniform map: 1)", "pointing_game": ">= 0.8",
         "deletion_beats_random": ">= 0.8 of patients", "seconds_2d": "<= 5 per patient",
         "seconds_3d_paper": "<= 60 per patient"}


def _cohort(kind: str, seed: int, patients: int, work: Path) -> Path:
    out = work / f"{kind}-{seed}"
    if not out.exists():
        if kind == "independent-ct":
            subprocess.run([sys.executable, str(HERE / "independent_cohort.py"), str(out), "--patients",
                            str(patients), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
        else:
            synthesize(out, SynthConfig(patients=patients, seed=seed), overwrite=True)
    return out / "cohort.yaml"


def _fit(model: str, cohort, held_out: list[str], cache: Path):
    """The network fitted on every patient but ``held_out``; (net, data, cfg, ids, t, e)."""
    cfg = resolve_config("cpu", model=model, endpoint="os", final_model=False)
    outcomes = cohort.outcomes("os", unit=cohort.time_unit)
    ids = list(outcomes.index)
    t, e = outcomes["time"].to_numpy(float), outcomes["event"].to_numpy(int)
    data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache, ids=ids)
    with tempfile.TemporaryDirectory() as state:
        learner = DeepLearner(cfg, data, ids, t, e, Path(state), None, objective=cfg.objective(cohort.time_unit))
        train = np.array([k for k, p in enumerate(ids) if p not in set(held_out)])
        tr = learner.fit(train, 0, "fit")
    spec = get_model(model)
    net = spec.build(learner.net_cfg, **data.geometry())
    net.load_state_dict(tr.state_dict())
    net.eval()
    return net, data, cfg, learner, tr, ids, t, e


def _masks(geo: np.ndarray, volume: bool, k_dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tumor + 2-pixel margin, liver, valid) on the input grid, from the geometry channels."""
    axis = 1 if volume else 3
    tumor = np.take(geo, TUMOR_CHANNEL, axis=axis) > 0.5
    liver = np.take(geo, LIVER_CHANNEL, axis=axis) > 0.5
    valid = np.take(geo, 3, axis=axis) > 0.5
    struct = np.zeros((1,) * (tumor.ndim - k_dims) + (5,) * k_dims, bool)
    struct[(0,) * (tumor.ndim - k_dims) + (slice(None),) * k_dims] = True  # dilate within each slice / volume
    return binary_dilation(tumor, structure=struct), liver, valid


def _faithfulness(net, spec, x: torch.Tensor, objective, geo: np.ndarray, volume: bool, rng,
                  layers: list[str] | None = None) -> dict | None:
    def risk(v):
        return objective.torch_risk(net(v))

    t0 = time.perf_counter()
    cam, base = grad_cam(net, x, risk, layers=layers or spec.saliency_layers(net),
                         index=spec.saliency_index(net, x.shape))
    seconds = time.perf_counter() - t0
    if volume:  # (T, C, D, H, W): one map for all time points; the masks of each time point
        heat = np.nanmean(cam, axis=1)  # (T, D, H, W)
        tumor, liver, valid = _masks(geo, True, 3)
        read = np.isfinite(heat)
    else:  # (T, S, K, C, H, W)
        heat = np.nanmean(cam, axis=3)
        tumor, liver, valid = _masks(geo, False, 2)
        read = np.isfinite(heat)
    region = read & valid
    if not (tumor & region).any():
        return None
    h = np.where(region, np.clip(np.nan_to_num(heat), 0, None), 0.0)
    if h.sum() <= 0:
        return None
    share = float(h[tumor & region].sum() / h.sum())
    area = float((tumor & region).sum() / region.sum())
    liver_share = float(h[liver & region].sum() / h.sum())
    hit = bool(tumor.ravel()[int(np.argmax(h))])
    # deletion: the 10 % most salient pixels (of those read) to zero, against the same mask shifted
    n_top = max(1, int(0.1 * region.sum()))
    top = np.zeros(h.shape, bool)
    top.ravel()[np.argsort(h.ravel())[::-1][:n_top]] = True

    def risk_without(mask: np.ndarray) -> float:
        xm = x.clone()
        m = torch.as_tensor(mask)
        m = m[:, None] if volume else m[:, :, :, None]  # broadcast over series
        xm[0] = xm[0] * (~m).to(xm.dtype)
        with torch.no_grad():
            return float(risk(xm)[0])

    delta_top = abs(risk_without(top) - base)
    spatial = (-3, -2, -1) if volume else (-2, -1)
    # random places for the same mask, as much on image content (non-zero input) as the salient one:
    # hiding empty background would change nothing and flatter the map
    content = (np.abs(x[0].numpy()).max(axis=1 if volume else 3) > 0)
    need = 0.9 * content[top].mean()
    rand, tries = [], 0
    while len(rand) < 5 and tries < 200:
        tries += 1
        shift = tuple(int(rng.integers(1, top.shape[a])) for a in spatial)
        moved = np.roll(top, shift, axis=spatial) & region
        if moved.sum() < 0.5 * top.sum() or content[moved].mean() < need:
            continue
        rand.append(abs(risk_without(moved) - base))
    if not rand:
        return None
    return {"tumor_share": share, "tumor_area_share": area, "tumor_mass_ratio": share / area if area else None,
            "liver_share": liver_share, "pointing_hit": hit, "delta_top": delta_top,
            "delta_random": float(np.mean(rand)), "deletion_beats_random": delta_top > float(np.mean(rand)),
            "seconds": seconds}


def _paper_seconds(model: str) -> float:
    """Seconds for one Grad-CAM++ map of the paper-size network (random weights), median of 3."""
    cfg = resolve_config("paper", model=model)
    spec = get_model(model)
    pre = cfg.preprocessing
    if model == "progswin":
        geo = {"streams": pre.timepoints, "channels": 1}
        shape = (1, pre.timepoints, 1, pre.size, pre.size, pre.size)
    else:
        geo = {"streams": len(pre.streams), "channels": 1}
        shape = (1, pre.timepoints, len(pre.streams), pre.slices, 1, pre.size, pre.size)
    net = spec.build(cfg.network_config(), **geo).eval()
    objective = cfg.objective("days")
    x = torch.rand(shape)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        grad_cam(net, x, lambda v: objective.torch_risk(net(v)), layers=spec.saliency_layers(net),
                 index=spec.saliency_index(net, shape))
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2)


def run_one(kind: str, seed: int, model: str, work: Path, n_explain: int, patients: int = 200,
            layers: list[str] | None = None) -> dict:
    path = _cohort(kind, seed, patients, work)
    cohort = load_cohort(path).cohort
    held_out = cohort.ids[:n_explain]
    t0 = time.perf_counter()
    net, data, cfg, learner, tr, ids, t, e = _fit(model, cohort, held_out, work / "cache")
    fit_s = time.perf_counter() - t0
    spec = get_model(model)
    volume = getattr(cfg.preprocessing, "kind", "slices") == "volume"
    objective = cfg.objective(cohort.time_unit)
    channels = data.channels
    geo_cfg = cfg.preprocessing.model_copy(update={"series": channels,
                                                   "missing_masks": cfg.preprocessing.missing_masks
                                                   or cohort.spec.missing_masks})
    held = np.array([ids.index(p) for p in held_out if p in ids])
    risk_held = learner.predict_risk(tr, held)
    ok = np.isfinite(risk_held)
    c_held = float(harrell_c(t[held][ok], e[held][ok], risk_held[ok]))
    rng = np.random.default_rng(0)
    rows = []
    for pid in held_out:
        if pid not in data.ids:
            continue
        i = data.ids.index(pid)
        x = torch.as_tensor(data.x[i:i + 1].astype(np.float32))
        g0 = time.perf_counter()
        geo = (patient_volume_geometry if volume else patient_slice_geometry)(cohort[pid], channels, geo_cfg)
        geo_s = time.perf_counter() - g0
        res = _faithfulness(net, spec, x, objective, geo["geometry"], volume, rng, layers)
        if res is not None:
            res["patient_id"] = pid
            res["seconds_with_geometry"] = res["seconds"] + geo_s
            rows.append(res)
    n = len(rows)
    ratio = [r["tumor_mass_ratio"] for r in rows if r["tumor_mass_ratio"] is not None]
    summary = {
        "cohort": kind, "seed": seed, "model": model, "layers": layers or spec.saliency_layers(net),
        "patients_explained": n, "fit_seconds": round(fit_s, 1),
        "held_out_c": round(c_held, 4),
        "tumor_mass_share_median": round(float(np.median([r["tumor_share"] for r in rows])), 4),
        "tumor_area_share_median": round(float(np.median([r["tumor_area_share"] for r in rows])), 4),
        "tumor_mass_ratio_median": round(float(np.median(ratio)), 3),
        "liver_mass_share_median": round(float(np.median([r["liver_share"] for r in rows])), 4),
        "pointing_game": round(sum(r["pointing_hit"] for r in rows) / n, 3),
        "deletion_beats_random": round(sum(r["deletion_beats_random"] for r in rows) / n, 3),
        "deletion_delta_top_median": round(float(np.median([r["delta_top"] for r in rows])), 4),
        "deletion_delta_random_median": round(float(np.median([r["delta_random"] for r in rows])), 4),
        "seconds_per_patient_median": round(float(np.median([r["seconds"] for r in rows])), 3),
        "seconds_with_geometry_median": round(float(np.median([r["seconds_with_geometry"] for r in rows])), 3),
    }
    print(json.dumps(summary), flush=True)
    return {**summary, "per_patient": rows}


def _markdown(result: dict) -> str:
    lines = ["# Faithfulness of the Grad-CAM++ maps", "",
             f"Generated by `benchmarks/explain_benchmark.py` (hccprog {result['hccprog_version']}). Each network "
             "(preset `cpu`) is fitted on 160 patients of a 200-patient cohort (OS) and explained on the 40 "
             "held-out ones, on its own input. Tumor = the tumor mask plus 2 pixels. Ratio: the tumor's share "
             "of the positive saliency mass over its share of the input area (volume); a uniform map scores 1. "
             "Deletion: the 10 % most salient pixels set to 0, against the same mask moved to 5 random places.", "",
             "| cohort | model | held-out C | tumor mass share | tumor area share | ratio | liver mass share "
             "| pointing game | deletion beats random | s / patient |", "| --- | --- | --- | --- | --- | --- | --- "
             "| --- | --- | --- |"]
    for r in result["runs"]:
        lines.append(f"| {r['cohort']} seed {r['seed']} | {r['model']} | {r['held_out_c']:.3f} | "
                     f"{r['tumor_mass_share_median']:.3f} | {r['tumor_area_share_median']:.3f} | "
                     f"{r['tumor_mass_ratio_median']:.2f} | {r['liver_mass_share_median']:.3f} | "
                     f"{r['pointing_game']:.2f} | {r['deletion_beats_random']:.2f} | "
                     f"{r['seconds_per_patient_median']:.2f} |")
    before = result.get("before_tuning", {})
    if before.get("runs"):
        lines += ["", f"Before the tuning round ({before.get('what', '')}):", "",
                  "| cohort | model | layer | ratio | pointing game | deletion beats random |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['cohort']} seed {r['seed']} | {r['model']} | {', '.join(r.get('layers', []))} | "
                  f"{r['tumor_mass_ratio_median']:.2f} | {r['pointing_game']:.2f} | {r['deletion_beats_random']:.2f} |"
                  for r in before["runs"]]
    lines += ["", "Goals: " + "; ".join(f"{k} {v}" for k, v in GOALS.items()) + ".", "",
              "Paper-size networks, random weights, one Grad-CAM++ map on this CPU (median of 3): "
              + ", ".join(f"{k} {v} s" for k, v in result.get("paper_seconds", {}).items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohorts", nargs="+", default=["hccprog-ct:0", "independent-ct:0"])
    ap.add_argument("--models", nargs="+", default=["crnn", "progswin"])
    ap.add_argument("--explain", type=int, default=40)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--layers", nargs="+", default=None, help="explain these modules instead of the defaults")
    ap.add_argument("--paper", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--update", action="store_true", help="replace only the rows measured now in --out")
    ap.add_argument("--only-paper", action="store_true",
                    help="re-measure the paper-size timings only, into the existing results file")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "explain.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.only_paper:
        result = json.loads(args.out.read_text(encoding="utf-8"))
        result["paper_seconds"] = {m: _paper_seconds(m) for m in args.models}
        print(json.dumps(result["paper_seconds"]), flush=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        args.out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="hccprog-explain-"))
    result = {"benchmark": "explain", "hccprog_version": __version__, "machine": platform.machine(),
              "torch_threads": torch.get_num_threads(), "goals": GOALS, "runs": []}
    if args.update and args.out.exists():  # re-measure some (cohort, model) rows, keep the others
        old = json.loads(args.out.read_text(encoding="utf-8"))
        redo = {(c.split(":")[0], int(c.split(":")[1]), m) for c in args.cohorts for m in args.models}
        result["runs"] = [r for r in old["runs"] if (r["cohort"], r["seed"], r["model"]) not in redo]
        result["paper_seconds"] = old.get("paper_seconds", {})
        if "before_tuning" in old:
            result["before_tuning"] = old["before_tuning"]
    for spec in args.cohorts:
        kind, seed = spec.split(":")
        for model in args.models:
            result["runs"].append(run_one(kind, int(seed), model, work, args.explain, args.patients, args.layers))
            result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
            args.out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
    result["runs"].sort(key=lambda r: (r["cohort"] != "hccprog-ct", r["cohort"], r["seed"], r["model"]))
    if args.paper:
        result["paper_seconds"] = {**result.get("paper_seconds", {}), **{m: _paper_seconds(m) for m in args.models}}
        print(json.dumps(result["paper_seconds"]), flush=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    args.out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
