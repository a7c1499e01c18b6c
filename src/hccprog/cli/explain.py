"""``hccprog explain``: saliency, contributions and a patient card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog.cli.app import app, out
from hccprog.cli.common import cohort_path, load_for_run, make_progress, parse_pairs
from hccprog.errors import ConfigError, RunFolderError, check_writable


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="A `train` run folder with a final model.")],
    cohort: Annotated[Path, typer.Argument(help="cohort.yaml of the patients to explain.")],
    patients: Annotated[list[str], typer.Option("--patients", "-p", help="Patient ID to explain; repeatable.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder to write (one sub-folder per patient).")] = Path(
        "explanations"),
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="gradcam++ (default) and/or gradcam; repeatable.")] = None,
    with_occlusion: Annotated[bool, typer.Option("--occlusion", help="Also occlusion sensitivity (model-agnostic, "
                                                   "slower: one forward pass per patch).")] = False,
    nifti: Annotated[bool, typer.Option(help="Write the maps on the original scans as NIfTI.")] = True,
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="Explain this module (a name of the network's modules, or a glob) instead of the model's "
                        "default last feature map, e.g. an earlier encoder stage for a finer map; repeatable.")] = None,
    target: Annotated[str, typer.Option(
        "--target", help="What the maps explain: risk (the model's risk); for a risk-class model (progswin) also "
                         "predicted (the patient's arg-max class), all (one map per class, as Yao et al. show) or a "
                         "class number (its logit).")] = "risk",
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    series_alias: Annotated[list[str] | None, typer.Option(
        "--series-alias", help="COHORT_NAME=MODEL_NAME, as for predict; repeatable.")] = None,
    covariate_alias: Annotated[list[str] | None, typer.Option(
        "--covariate-alias", help="COHORT_COLUMN=MODEL_COVARIATE, as for predict; repeatable.")] = None,
) -> None:
    """What a trained model looked at, per patient: Grad-CAM++ / Grad-CAM overlays on the model's
    input with the liver and tumor contours, the maps on the original scans (NIfTI), the radiomics
    features' or the clinical covariates' contributions, and a printable patient card (card.html)."""
    cohort = cohort_path(cohort)
    from hccprog.explain.run import METHODS, explain_run

    if not (run / "config.yaml").exists():
        raise RunFolderError(f"{run / 'config.yaml'} is missing: not a run folder")
    methods = tuple(method or ["gradcam++"])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"--method: unknown {', '.join(bad)} (known: {', '.join(METHODS)})")
    check_writable(dest)
    aliases = {"series": parse_pairs(series_alias or [], "--series-alias"),
               "covariates": parse_pairs(covariate_alias or [], "--covariate-alias")}
    c = load_for_run(cohort, images=True).with_aliases(**aliases)
    with make_progress() as bar:
        task = bar.add_task("explaining", total=None)
        summary = explain_run(run, c, list(patients), dest, methods=methods, with_occlusion=with_occlusion,
                              nifti=nifti, overwrite=overwrite, cache_dir=cache, layers=list(layer or []) or None,
                              target=target,
                              progress=lambda label, d, n: bar.update(task, description=label, completed=d, total=n))
    for pid, secs in summary["seconds_per_patient"].items():
        out.print(f"{pid}: maps in {secs['maps']:.1f} s, {secs['total']:.1f} s with rendering")
    for note in summary["notes"]:
        out.print(f"note: {note}")
    out.print(f"explanations: {dest} (a card.html per patient)")
