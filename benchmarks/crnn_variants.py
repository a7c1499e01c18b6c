"""Image-model variants of ``crnn`` (or ``crnn-s``) under 5-fold CV: how the ``cpu`` preset was chosen.

Preprocesses a cohort once per slice config that the chosen variants need (the ``cpu``
preset's, or the variant's overrides of it), then for each named variant and CV seed trains the
network alone (no clinical baselines, no fusion, no bootstrap) and prints one JSON line with the
out-of-fold Harrell's C. Variants change the preprocessing, network or training config of the
preset, average the predictions over the eight flips and 90-degree rotations of the slices
(``tta``) or over networks trained with two seeds (``seeds2``); ``--device cuda`` runs them on a
GPU, ``--workers`` in parallel processes. The tables in docs/models/crnn.md came from these runs.

    .venv/bin/python benchmarks/crnn_variants.py COHORT.yaml --variants preset noaug ep40 --cv-seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

_TUMOR = {"name": "tumor", "roi": "tumor", "fov_mm": 128.0}
#: name -> overrides of the preset: ``network``, ``training``, ``preprocessing`` (dicts), ``seeds``
#: (networks averaged per fold), ``tta`` (average over the slices' flips and 90-degree rotations)
VARIANTS: dict[str, dict] = {
    "preset": {},
    # every representative slice in every training step (the cpu preset before it drew one per step)
    "all-slices": {"training": {"slices_per_step": None}},
    "tta": {"tta": True},
    "seeds2": {"seeds": 2},
    "lite0": {"network": {"encoder": "efficientnet-lite0", "pretrained": True},
              "training": {"epochs": 10, "val_fraction": 0.2, "patience": 4}},
    "early-stopping": {"training": {"epochs": 30, "val_fraction": 0.2, "patience": 10}},
    "noaug": {"training": {"augment": False}},
    "ep30": {"training": {"epochs": 30}},
    "ep40": {"training": {"epochs": 40}},
    "ep60": {"training": {"epochs": 60}},  # with the preset's one slice per step: three times its steps
    "wide": {"network": {"encoder_widths": (32, 64, 128, 256)}},
    "lr2e-3": {"training": {"lr": 2e-3}},
    "lr2e-3-ep30": {"training": {"lr": 2e-3, "epochs": 30}},
    "bs16": {"training": {"batch_size": 16}},
    "bs64": {"training": {"batch_size": 64}},
    "drop0.1": {"network": {"dropout": 0.1}},
    "hidden64": {"network": {"hidden": 64}},
    "wd1e-3": {"training": {"weight_decay": 1e-3}},
    "res2mm": {"preprocessing": {"spacing_mm": (2.0, 2.0, 5.0), "streams": [{**_TUMOR, "fov_mm": 64.0}]}},  # 32 px
    "res3mm": {"preprocessing": {"spacing_mm": (3.0, 3.0, 5.0), "streams": [{**_TUMOR, "fov_mm": 96.0}]}},
    "liver-stream": {"preprocessing": {"streams": [_TUMOR, {"name": "liver", "roi": "liver", "fov_mm": None}]}},
    # a slab around the largest tumor slice
    "contiguous7": {"preprocessing": {"slices": 7, "selection": "contiguous"}},
    # the same crop with every pixel outside the tumor mask set to zero
    "tumor-masked": {"preprocessing": {"streams": [{**_TUMOR, "mask": "tumor"}]}},
}


def _dihedral(x: np.ndarray):
    """The eight flips and 90-degree rotations of the slices (last two axes)."""
    for k in range(4):
        r = np.rot90(x, k, axes=(-2, -1))
        yield np.ascontiguousarray(r)
        yield np.ascontiguousarray(r[..., ::-1])


def _job(args: tuple) -> dict:
    from hccprog.evaluation.survival import harrell_c
    from hccprog.models.registry import get_model
    from hccprog.survival.cv import CVConfig, make_splits
    from hccprog.training.config import resolve_config
    from hccprog.training.deep import SurvivalNetTrainer

    npz, model, variant, cv_seed, device = args
    import torch

    torch.set_num_threads(1)
    d = np.load(npz)
    x, t, e = d["x"], d["t"], d["e"]
    v = VARIANTS[variant]
    cfg = resolve_config("cpu", model=model, network=v.get("network", {}),
                         training={**v.get("training", {}), "device": device})
    spec = get_model(model)
    geo = {"streams": x.shape[2], "channels": x.shape[4]}
    risk = np.zeros(len(t))
    t0 = time.perf_counter()
    for s in make_splits(len(t), e, CVConfig(folds=5, repeats=1, seed=cv_seed)):
        fold_risk = []
        for rep in range(v.get("seeds", 1)):
            tr = SurvivalNetTrainer(lambda: spec.build(cfg.network_config(), **geo),
                                    cfg.training.model_copy(update={"seed": cv_seed * 1000 + s.fold + 100 * rep}))
            tr.fit(x[s.train], t[s.train], e[s.train])
            views = _dihedral(x[s.test]) if v.get("tta") else [x[s.test]]
            # centred on the training part's mean: the partial likelihood leaves the offset free
            centre = tr.predict_risk(x[s.train]).mean()
            fold_risk.append(np.mean([tr.predict_risk(view) for view in views], axis=0) - centre)
        risk[s.test] = np.mean(fold_risk, axis=0)
    return {"variant": variant, "cv_seed": cv_seed, "c": round(float(harrell_c(t, e, risk)), 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    from hccprog.cohort.load import load_cohort
    from hccprog.models.registry import get_model
    from hccprog.preprocessing.cache import preprocess_cohort
    from hccprog.training.config import resolve_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort")
    ap.add_argument("--model", default="crnn")
    ap.add_argument("--endpoint", default="os")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["preset"])
    ap.add_argument("--cv-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tensors", default="crnn_variants_tensors.npz", help="where the preprocessed tensors go")
    args = ap.parse_args()
    spec = get_model(args.model)
    if spec.clinical or spec.objective != "cox":
        raise SystemExit("variants cover image-only Cox models (crnn, crnn-s)")
    cohort = load_cohort(args.cohort).cohort
    out = cohort.outcomes(args.endpoint, unit=cohort.time_unit)
    base = Path(args.tensors).with_suffix(".npz")
    # one tensor file per distinct slice config: the preset's, or a variant's overrides of it
    prep_of = {v: v if "preprocessing" in VARIANTS[v] else "preset" for v in args.variants}
    tensors = {}
    for prep in dict.fromkeys(prep_of.values()):
        cfg = resolve_config("cpu", model=args.model, preprocessing=VARIANTS[prep].get("preprocessing", {}))
        data = preprocess_cohort(cohort, cfg.preprocessing, ids=list(out.index))
        o = out.loc[data.ids]
        path = base if prep == "preset" else base.with_name(f"{base.stem}-{prep}.npz")
        np.savez(path, x=data.x, t=o["time"].to_numpy(float), e=o["event"].to_numpy(int))
        tensors[prep] = path
    jobs = [(tensors[prep_of[v]], args.model, v, s, args.device) for v in args.variants for s in args.cv_seeds]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        for row in ex.map(_job, jobs):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
