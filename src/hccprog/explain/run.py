"""``hccprog explain``: what a trained run's final model looked at, for chosen patients.

For a network: Grad-CAM++ and Grad-CAM maps (optionally occlusion sensitivity) over the model's
input, drawn on the input slices (or three planes through the tumor of a volume) with the liver
and tumor contours, and put back on each observed time point's original scan as NIfTI volumes.
For a radiomics model: each selected feature's contribution. For the fused model
(``<model>+clinical``): each covariate's contribution (coefficient x centred value, the value in
original units) and the image score's. Every patient gets ``explanation.json`` and a patient card
(``card.html``); the scores are those ``predict`` gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hccprog import __version__
from hccprog.cohort.model import Cohort
from hccprog.cohort.spec import unit_factor
from hccprog.errors import ConfigError, InputError
from hccprog.evaluation.groups import GROUP_LABELS
from hccprog.explain.card import save_survival, write_card
from hccprog.explain.geometry import slices_to_scan, volume_to_scan
from hccprog.explain.render import contribution_bars, slice_overlays, volume_overlays
from hccprog.explain.saliency import CamMethod, grad_cam, occlusion
from hccprog.fills import split_fills
from hccprog.models.registry import get_model
from hccprog.preprocessing.cache import preprocess_cohort, preprocessing_config
from hccprog.preprocessing.features import FeatureConfig, extract_features, feature_matrix
from hccprog.preprocessing.kinds import preprocessing_kind
from hccprog.preprocessing.masks import mask_series
from hccprog.preprocessing.slices import patient_slice_geometry
from hccprog.preprocessing.volumes import patient_volume_geometry
from hccprog.reports.nomogram import covariate_info, fused_terms
from hccprog.runs import save_figure, staged_run, write_csv, write_json, write_yaml
from hccprog.survival.breslow import BreslowSurvival
from hccprog.survival.score_cox import SCORE, ScoreCoxModel
from hccprog.training.clinical import ClinicalEncoder, clinical_frame
from hccprog.training.objectives import objective_from_state
from hccprog.training.predict import load_trained, match_covariates, predict_cohort, run_config, score_cox_factors

METHODS: tuple[CamMethod, ...] = ("gradcam++", "gradcam")


def _subset(cohort: Cohort, ids: list[str]) -> Cohort:
    missing = [p for p in ids if p not in cohort.patients]
    if missing:
        raise InputError(f"patients not in the cohort: {', '.join(missing)}",
                         hint=f"the cohort has {len(cohort.ids)} patients, e.g. {', '.join(cohort.ids[:5])}")
    return Cohort(spec=cohort.spec, root=cohort.root, patients={p: cohort.patients[p] for p in ids},
                  table=cohort.table)


def clinical_contributions(desc: dict, cohort: Cohort, ids: list[str], image_risk: dict[str, float]) -> pd.DataFrame:
    """Per patient, the fused model's terms: the image score and each clinical covariate, with the
    value as the cohort has it (original units; ``missing`` where the model imputed it) and its
    contribution to the fused log-hazard (coefficient x centred value)."""

    fusion = desc["fusion"]
    if fusion.get("kind") == "multivariable":
        return _score_cox_contributions(fusion, cohort, ids, image_risk)
    loc, scale = fusion["fusion"]["loc"][0], fusion["fusion"]["scale"][0]

    info = fusion.get("covariates_info") or covariate_info(cohort)  # runs saved before it was stored
    terms, offset = fused_terms(desc["model"], desc.get("risk_range") or (loc - 2.3 * scale, loc + 2.3 * scale),
                                fusion["fusion"], fusion["clinical"], info)
    covariates, _ = match_covariates(cohort.covariates(), fusion["clinical"]["covariates"])
    rows = []
    for pid in ids:
        for t in terms:
            if t.kind == "score":
                value, shown = image_risk[pid], f"{image_risk[pid]:.3f}"
            else:
                value = covariates.at[pid, t.name] if t.name in covariates else None
                value = None if value is None or (isinstance(value, float) and np.isnan(value)) else value
                shown = t.display(value)
                if value is None:
                    shown = f"missing (imputed as {t.display(t.fill)})"
            rows.append({"patient_id": pid, "term": t.name, "label": t.label, "value": shown,
                         "contribution": t.contribution(value)})
        rows.append({"patient_id": pid, "term": "(baseline)", "label": "baseline", "value": "",
                     "contribution": offset})
    return pd.DataFrame(rows)


def class_targets(target: str, objective, probabilities: np.ndarray | None) -> list[int | None]:
    """What Grad-CAM explains: ``risk`` (None: the model's risk), or for a risk-class model a target
    class's logit (Yao et al. 2025: "the gradient of the target class"): ``predicted`` (the arg-max
    class of the patient), ``all`` (each class in turn) or a class number."""
    k = len(objective.class_columns)
    if target == "risk":
        return [None]
    if objective.kind != "classes":
        raise ConfigError(f"--target {target}: only a risk-class model has classes to explain",
                          hint="leave --target at risk (the model's risk)")
    if target == "all":
        return list(range(k))
    if target == "predicted":
        return [int(np.argmax(probabilities))] if probabilities is not None else [None]
    if target.isdigit() and int(target) < k:
        return [int(target)]
    raise ConfigError(f"--target {target}: expected risk, predicted, all or a class 0..{k - 1}")


def _score_cox_contributions(fusion: dict, cohort: Cohort, ids: list[str],
                             image_risk: dict[str, float]) -> pd.DataFrame:
    """The multivariable fused model's terms (DLOP_Cox): per patient the image score and each selected
    factor, its value, and its part of the fused log-hazard (coefficient x (encoded value - training
    mean), summed over a categorical factor's levels)."""
    cox = ScoreCoxModel.score_from_state(fusion["score_cox"])
    factors = [c for c in cox.covariates if c != SCORE]
    covariates, _ = score_cox_factors(cohort, factors)
    frame = covariates.reindex(index=ids, columns=factors)
    frame[SCORE] = [image_risk[p] for p in ids]
    Z = cox.prep.transform(frame[cox.covariates])
    coef, center = cox.linear["coefficients"], cox.linear["center"]
    rows = []
    for pid in ids:
        for raw in cox.covariates:
            cols = [c for c in coef if c == raw or c.startswith(f"{raw}=")]
            value = frame.at[pid, raw]
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            part = float(sum(coef[c] * (Z.at[pid, c] - center[c]) for c in cols))
            shown = "missing (imputed)" if missing else (f"{value:.3f}" if isinstance(value, float) else str(value))
            rows.append({"patient_id": pid, "term": raw, "label": "image score" if raw == SCORE else raw,
                         "value": shown, "contribution": part})
        rows.append({"patient_id": pid, "term": "(baseline)", "label": "baseline", "value": "", "contribution": 0.0})
    return pd.DataFrame(rows)


def _network_maps(net, spec, desc: dict, x: torch.Tensor, clin: torch.Tensor | None, objective, *,
                  methods: tuple[CamMethod, ...], with_occlusion: bool,
                  layers: list[str] | None = None, target: int | None = None) -> dict[str, np.ndarray]:
    def risk(v: torch.Tensor) -> torch.Tensor:
        out = net(v) if clin is None else net(v, clin.expand(v.shape[0], -1))
        return objective.torch_risk(out) if target is None else out[:, target]

    index = spec.saliency_index(net, tuple(x.shape))
    try:  # the user's layers: any module inside the network's per-slice path (the same rows)
        maps = {m: grad_cam(net, x, risk, layers=layers or spec.saliency_layers(net), index=index, method=m)[0]
                for m in methods}
    except ValueError as exc:
        if not layers:
            raise
        raise ConfigError(f"--layer {', '.join(layers)}: {exc}",
                          hint=f"the default layers are {', '.join(spec.saliency_layers(net))}; pick a module "
                               "inside the same encoder (e.g. an earlier stage for a finer map)") from None
    if with_occlusion:
        dims = 3 if preprocessing_kind(desc["preprocessing"]) == "volume" else 2
        occ, _ = occlusion(risk, x, spatial_dims=dims, mask_size=max(4, x.shape[-1] // 8))
        top = np.nanmax(np.abs(occ))
        maps["occlusion"] = occ / top if top > 0 else occ
    return maps


def explain_run(run: Path, cohort: Cohort, ids: list[str], out: Path, *, methods: tuple[CamMethod, ...] = METHODS,
                with_occlusion: bool = False, nifti: bool = True, overwrite: bool = False,
                layers: list[str] | None = None, target: str = "risk",
                cache_dir: Path | None = None, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Explain the final model of ``run`` for the patients ``ids`` of ``cohort`` into ``out``
    (one folder per patient); returns timings and what was written.

    ``target`` (:func:`class_targets`): ``risk`` explains the model's risk; a risk-class model's
    ``predicted`` class, ``all`` classes (one map each, the ProgSwin paper's per-class Grad-CAM++) or
    one class number explains that class's logit."""

    conf = run_config(run)
    desc, net = load_trained(run)
    spec = get_model(desc["model"])
    sub = _subset(cohort, ids)
    scores, stats = predict_cohort(run, sub, cache_dir=cache_dir, trained=(desc, net))
    summary: dict = {"patients": {}, "seconds_per_patient": {}, "notes": list(stats.get("notes", []))}
    with staged_run(out, overwrite=overwrite) as tmp:
        if net is None:
            per_patient = _explain_features(desc, sub, ids, tmp, cache_dir)
        else:
            per_patient = _explain_network(desc, net, spec, sub, ids, tmp, scores, methods=methods,
                                           with_occlusion=with_occlusion, nifti=nifti, cache_dir=cache_dir,
                                           progress=progress, summary=summary, layers=layers, target=target)
        if desc.get("fusion"):
            risk = {p: float(r) for p, r in scores[scores["model"] == desc["model"]].set_index("patient_id")["risk"]
                    .items()}
            have = [p for p in ids if p in risk]
            contrib = clinical_contributions(desc, sub, have, risk) if have else pd.DataFrame()
            for pid, part in contrib.groupby("patient_id", sort=False):
                write_csv(tmp / _folder(pid) / "clinical_contributions.csv", part.drop(columns="patient_id"),
                          index=False, float_format="%.6g")
                per_patient.setdefault(pid, {})["clinical_contributions"] = part.drop(columns="patient_id") \
                    .to_dict(orient="records")

        factor = unit_factor(conf.get("time_unit") or cohort.time_unit, cohort.time_unit)
        for pid in ids:
            entry = per_patient.setdefault(pid, {})
            entry.update(_scores(scores, pid, desc, conf))
            folder = tmp / _folder(pid)
            folder.mkdir(parents=True, exist_ok=True)
            if desc.get("task") != "response":
                save_survival(folder, _curves(desc, entry, factor), cohort.time_unit,
                              [float(h) * factor for h in desc.get("horizons", [])])
            write_json(folder / "explanation.json", entry)
            write_card(folder / "card.html", pid, entry, run_name=Path(run).name, cohort_name=cohort.name,
                       time_unit=cohort.time_unit)
            summary["patients"][pid] = entry.get("files", {})
        write_yaml(tmp / "config.yaml", {"command": "explain", "hccprog_version": __version__,
                                         "run": str(Path(run).resolve()), "model": desc["model"],
                                         "cohort_name": cohort.name, "patients": ids, "methods": list(methods),
                                         "target": target,
                                         "occlusion": with_occlusion, "nifti": nifti, "notes": summary["notes"],
                                         "seconds_per_patient": summary["seconds_per_patient"]})
    return summary


def _curves(desc: dict, entry: dict, factor: float) -> dict[str, dict]:
    """Per score with a Breslow baseline (the fused model first), S(t) on a grid in the cohort's time
    unit with its 95% band."""

    horizons = [float(h) for h in desc.get("horizons", [])]
    if not horizons:
        return {}
    grid = np.linspace(0.0, max(horizons) * 1.25, 200)
    bases = {}
    if desc.get("fusion"):
        bases[desc["fusion"]["name"]] = desc["fusion"]["breslow"]
    if objective_from_state(desc.get("objective", {"kind": "cox"})).kind != "discrete" and "breslow" in desc:
        bases[desc["model"]] = desc["breslow"]  # a discrete-time model's own curve is not a Breslow one
    out = {}
    for name, state in bases.items():
        score = entry["scores"].get(name)
        if score is None:
            continue
        base = BreslowSurvival.from_state(state)
        band = base.band(score["risk"], grid) or (base.predict_survival([score["risk"]], grid)[0], None, None)
        s, lo, hi = band
        out[name] = {"time": (grid * factor).tolist(), "survival": np.asarray(s).tolist(),
                     "lower": None if lo is None else np.asarray(lo).tolist(),
                     "upper": None if hi is None else np.asarray(hi).tolist()}
    return out


def _folder(pid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(pid))


def _scores(scores: pd.DataFrame, pid: str, desc: dict, conf: dict) -> dict:
    """The patient's rows of ``predict``: risk, group at the training cut-off, survival, fills."""

    out: dict = {"patient_id": pid, "model": desc["model"], "task": desc.get("task", "survival"),
                 "endpoint": conf.get("endpoint"), "time_unit_run": conf.get("time_unit"), "scores": {}}
    for _, row in scores[scores["patient_id"] == pid].iterrows():
        name = row["model"]
        cut = (desc["fusion"]["risk_groups"]["cutoffs"] if name != desc["model"] and desc.get("fusion")
               else desc.get("risk_groups", {}).get("cutoffs", [desc.get("threshold")]))
        labels = ["disease control", "PD"] if desc.get("task") == "response" else \
            GROUP_LABELS.get(len(cut) + 1, [str(k) for k in range(len(cut) + 1)])
        entry = {"risk": float(row["risk"]), "risk_group": labels[int(row["risk_group"])],
                 "cutoffs": [float(c) for c in cut if c is not None],
                 "survival": {c[5:]: float(row[c]) for c in scores.columns if c.startswith("surv_")
                              and pd.notna(row.get(c))},
                 "imputed": split_fills(row.get("imputed"))}
        if "p_PD" in row and pd.notna(row["p_PD"]):
            entry["p_PD"] = float(row["p_PD"])
        out["scores"][name] = entry
    return out


def _explain_network(desc, net, spec, cohort: Cohort, ids, tmp: Path, scores, *, methods, with_occlusion, nifti,
                     cache_dir, progress, summary, layers=None, target: str = "risk") -> dict:

    pre_cfg = preprocessing_config({**desc["preprocessing"], "series": desc["channels"]})
    data = preprocess_cohort(cohort, pre_cfg, cache_dir=cache_dir)
    channels = data.channels
    geo_cfg = pre_cfg.model_copy(update={"series": channels,
                                         "missing_masks": pre_cfg.missing_masks or cohort.spec.missing_masks})
    volume = preprocessing_kind(desc["preprocessing"]) == "volume"
    objective = objective_from_state(desc.get("objective", {"kind": "cox"}))
    clin_all = None
    if desc.get("clinical"):
        enc = ClinicalEncoder.from_state(desc["clinical"])
        clin_all = torch.as_tensor(enc.transform(clinical_frame(cohort, data.ids, enc.cfg)))
    streams = [s.name for s in getattr(pre_cfg, "streams", [])]
    out: dict = {}
    for n, pid in enumerate(ids):
        if progress:
            progress(f"explaining {pid}", n, len(ids))
        if pid not in data.ids:
            summary["notes"].append(f"{pid}: not explained ({data.skipped.get(pid, 'no model input')})")
            continue
        t0 = time.perf_counter()
        i = data.ids.index(pid)
        x = torch.as_tensor(data.x[i:i + 1].astype(np.float32))
        clin = clin_all[i:i + 1] if clin_all is not None else None
        row = scores[(scores.patient_id == pid) & (scores.model == desc["model"])]
        pcols = [f"p_{c}" for c in objective.class_columns if f"p_{c}" in row.columns]
        proba = row[pcols].to_numpy(float)[0] if pcols and len(row) else None
        maps: dict[str, np.ndarray] = {}
        shown: dict[str, str] = {}
        for k in class_targets(target, objective, proba):
            got = _network_maps(net, spec, desc, x, clin, objective, methods=methods,
                                with_occlusion=with_occlusion and k is None, layers=layers, target=k)
            for method, heat in got.items():
                key = method if k is None else f"{method}_class{k}"
                maps[key] = heat
                what = {"gradcam++": "Grad-CAM++", "gradcam": "Grad-CAM", "occlusion": "occlusion sensitivity"}[method]
                shown[key] = what if k is None else f"{what} of class {k}"
        seconds_maps = time.perf_counter() - t0
        patient = cohort[pid]
        geo = (patient_volume_geometry if volume else patient_slice_geometry)(patient, channels, geo_cfg)
        labels = [tp.label for tp in list(patient.timepoints)[: pre_cfg.timepoints]]
        labels += [f"time point {k + 1} (carried forward)" for k in range(len(labels), pre_cfg.timepoints)]
        folder = tmp / _folder(pid)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        x0 = data.x[i].astype(np.float32)
        if not volume and x0.shape[3] > len(channels):  # mask-map inputs (DMMGNet): the series are what is shown
            x0 = x0[:, :, :, : len(channels)]
            maps = {key: heat[:, :, :, : len(channels)] for key, heat in maps.items()}
        for method, heat in maps.items():
            what = shown[method]
            title = f"{pid}: {desc['model']} {what} (risk {float(row['risk'].iloc[0]):.3f})"
            fig = (volume_overlays(x0, np.clip(heat, 0, None), geo["geometry"], timepoints=labels, title=title)
                   if volume else slice_overlays(x0, np.clip(heat, 0, None), geo["geometry"], timepoints=labels,
                                                 streams=streams, title=title))
            name = f"overlay_{method.replace('++', 'pp')}.png"
            save_figure(fig, folder / name)
            files[f"overlay {what}"] = name
            if nifti and not method.startswith("occlusion"):
                files.update(_write_nifti(patient, channels, heat, geo, data.observed[i], labels, folder, method,
                                          volume=volume, thickness=float(pre_cfg.spacing_mm[2])))
        np.savez_compressed(folder / "saliency.npz", **{m.replace("++", "pp"): v for m, v in maps.items()})
        files["maps (model input grid)"] = "saliency.npz"
        seconds = time.perf_counter() - t0
        summary["seconds_per_patient"][pid] = {"maps": round(seconds_maps, 3), "total": round(seconds, 3)}
        out[pid] = {"files": files, "saliency": {
            "methods": list(maps), "layers": layers or spec.saliency_layers(net),
            "explained": {key.replace("++", "pp"): _explained(key) for key in maps},
            "observed_timepoints": [bool(v) for v in data.observed[i]]}, "seconds": round(seconds, 3)}
    return out


def _explained(key: str) -> str:
    """What a map of ``_explain_network`` explains, from its key (``<method>`` or ``<method>_class<k>``)."""
    if "_class" in key:
        return f"the logit of class {key.rsplit('_class', 1)[1]}"
    return "the model's risk (objective.torch_risk)"


def _write_nifti(patient, channels, heat, geo, observed, labels, folder: Path, method: str, *, volume: bool,
                 thickness: float) -> dict[str, str]:
    """The map on each observed time point's original scan (the series that carries its mask)."""
    import nibabel as nib


    files = {}
    for ti, tp in enumerate(list(patient.timepoints)[: len(observed)]):
        if not observed[ti]:
            continue
        ref = mask_series(tp, channels) or next((c for c in channels if c in tp.series), None)
        if ref is None:
            continue
        image = tp.series[ref].image.load()
        if volume:
            h = np.nanmean(heat[ti], axis=0)
            back = volume_to_scan(h, geo["geometry"][ti], image.affine, image.shape)
        else:
            s, k = heat.shape[1:3]
            h = np.nanmean(heat[ti], axis=2).reshape(s * k, *heat.shape[-2:])  # mean over series
            g = geo["geometry"][ti].reshape(s * k, *geo["geometry"].shape[-3:])
            back = slices_to_scan(h, g, image.affine, image.shape, thickness_mm=thickness)
        name = f"saliency_{method.replace('++', 'pp')}_{_folder(labels[ti])}.nii.gz"
        nib.save(nib.Nifti1Image(np.clip(back, 0, None).astype(np.float32), image.affine), str(folder / name))
        files[f"NIfTI {method} on {labels[ti]} ({ref})"] = name
    return files


def _explain_features(desc: dict, cohort: Cohort, ids: list[str], tmp: Path, cache_dir: Path | None) -> dict:
    """Radiomics: each selected feature's contribution to the risk, its value and the training
    mean, per patient (``feature_contributions.csv``, a bar chart)."""

    spec = get_model(desc["model"])
    net_cfg = spec.config(**desc["network"])
    pipe = spec.build(net_cfg, task=desc["pipeline"]["task"]).from_state(desc["pipeline"], config=net_cfg)
    cfg = FeatureConfig(**{**desc["preprocessing"], "series": desc["channels"]})
    X = feature_matrix(extract_features(cohort, cfg, cache_dir=cache_dir), delta=spec.reads_followups(net_cfg))
    cols = pipe.selected_
    Z, parts = pipe.standardize(X), pipe.contributions(X)
    out = {}
    for pid in ids:
        if pid not in parts.index:
            continue
        folder = tmp / _folder(pid)
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"label": cols, "value": X.reindex(columns=cols).loc[pid].to_numpy(),
                              "training_mean": pipe.mean_[cols].to_numpy(), "z": Z.loc[pid].to_numpy(),
                              "contribution": parts.loc[pid, cols].to_numpy()})
        frame = frame.reindex(frame["contribution"].abs().sort_values(ascending=False).index)
        write_csv(folder / "feature_contributions.csv", frame, index=False, float_format="%.6g")
        save_figure(contribution_bars(frame, f"{pid}: {desc['model']}, features' contributions"),
                    folder / "feature_contributions.png")
        out[pid] = {"files": {"feature contributions": "feature_contributions.csv",
                              "feature contributions (chart)": "feature_contributions.png"},
                    "features": frame.head(12).to_dict(orient="records"),
                    "features_baseline": float(parts.loc[pid, "baseline"])}
    return out


__all__ = ["METHODS", "clinical_contributions", "explain_run"]
