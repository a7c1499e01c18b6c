"""Image-model variants of ``crnn`` (or ``crnn-s``) under 5-fold CV: how the ``cpu`` preset was chosen.

Preprocesses a cohort once with the ``cpu`` preset's slice config (hccprog's cache), then for
each named variant and CV seed trains the network alone (no clinical baselines, no fusion, no
bootstrap) and prints one JSON line with the out-of-fold Harrell's C. Variants change the
network or training config of the preset; ``--device cuda`` runs them on a GPU, ``--workers``
in parallel processes. The table in docs/models/crnn.md came from these runs.

    .venv/bin/python benchmarks/crnn_variants.py COHORT.yaml --variants preset noaug ep40 --cv-seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

VARIANTS: dict[str, tuple[dict, dict]] = {  # name -> (network overrides, training overrides)
    "preset": ({}, {}),
    "lite0": ({"encoder": "efficientnet-lite0", "pretrained": True},
              {"epochs": 10, "val_fraction": 0.2, "patience": 4}),
    "early-stopping": ({}, {"epochs": 30, "val_fraction": 0.2, "patience": 10}),
    "noaug": ({}, {"augment": False}),
    "ep30": ({}, {"epochs": 30}),
    "ep40": ({}, {"epochs": 40}),
    "wide": ({"encoder_widths": (32, 64, 128, 256)}, {}),
    "lr2e-3": ({}, {"lr": 2e-3}),
    "bs16": ({}, {"batch_size": 16}),
    "bs64": ({}, {"batch_size": 64}),
    "drop0.1": ({"dropout": 0.1}, {}),
    "hidden64": ({"hidden": 64}, {}),
    "wd1e-3": ({}, {"weight_decay": 1e-3}),
}


def _job(args: tuple) -> dict:
    from hccprog.evaluation.survival import harrell_c
    from hccprog.models.registry import get_model
    from hccprog.training.cv import CVConfig, make_splits
    from hccprog.training.deep import SurvivalNetTrainer
    from hccprog.training.train import resolve_config

    npz, model, variant, cv_seed, device = args
    import torch

    torch.set_num_threads(1)
    d = np.load(npz)
    x, t, e = d["x"], d["t"], d["e"]
    net_over, train_over = VARIANTS[variant]
    cfg = resolve_config("cpu", model=model, network=net_over, training={**train_over, "device": device})
    spec = get_model(model)
    geo = {"streams": x.shape[2], "channels": x.shape[4]}
    risk = np.zeros(len(t))
    t0 = time.perf_counter()
    for s in make_splits(len(t), e, CVConfig(folds=5, repeats=1, seed=cv_seed)):
        tr = SurvivalNetTrainer(lambda: spec.build(cfg.network_config(), **geo),
                                cfg.training.model_copy(update={"seed": cv_seed * 1000 + s.fold}))
        tr.fit(x[s.train], t[s.train], e[s.train])
        risk[s.test] = tr.predict(x[s.test])
    return {"variant": variant, "cv_seed": cv_seed, "c": round(float(harrell_c(t, e, risk)), 4),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    from hccprog.cohort.load import load_cohort
    from hccprog.models.registry import get_model
    from hccprog.preprocessing.cache import preprocess_cohort
    from hccprog.training.train import resolve_config

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
    data = preprocess_cohort(cohort, resolve_config("cpu", model=args.model).preprocessing, ids=list(out.index))
    out = out.loc[data.ids]
    np.savez(args.tensors, x=data.x, t=out["time"].to_numpy(float), e=out["event"].to_numpy(int))
    jobs = [(args.tensors, args.model, v, s, args.device) for v in args.variants
            for s in args.cv_seeds]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        for row in ex.map(_job, jobs):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
