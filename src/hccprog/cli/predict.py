"""``hccprog predict``: apply a trained run to new patients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog.cli.app import app, out
from hccprog.cli.common import cohort_path, load_for_run, make_progress, parse_pairs, read_ids
from hccprog.errors import RunFolderError, check_writable


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A `train` run folder (with models/<model>.pt).")],
    cohort: Annotated[Path, typer.Argument(help="cohort.yaml of the patients to score.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder to write predictions.csv into.")] = Path("predictions"),
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    series_alias: Annotated[list[str] | None, typer.Option(
        "--series-alias", help="COHORT_NAME=MODEL_NAME: read the cohort's series under the name the model was "
                               "trained on (e.g. PORTAL_VENOUS=CT_PV); repeatable; adds to cohort.yaml's "
                               "series_aliases.")] = None,
    covariate_alias: Annotated[list[str] | None, typer.Option(
        "--covariate-alias", help="COHORT_COLUMN=MODEL_COVARIATE (e.g. AFP_ngml=afp); repeatable; adds to "
                                  "cohort.yaml's covariate_aliases.")] = None,
    explain_ids: Annotated[list[str] | None, typer.Option(
        "--explain", help="Also explain this patient (saliency, contributions, patient card) into "
                          "<out>/explanations/<patient>; repeatable; `all` for every scored patient.")] = None,
) -> None:
    """Score new patients with a trained run's final model and its fusion with the clinical Cox
    score (<model>+clinical): risk, risk group (training cut-off) and survival probabilities at the
    run's horizons, in the new cohort's time unit. With outcomes, also metrics and a report.

    Covariates match by name, then case-insensitively; whatever cannot be scored is said, with why."""
    cohort = cohort_path(cohort)
    from hccprog.training.predict import write_predictions


    if not (run / "config.yaml").exists():
        raise RunFolderError(f"{run / 'config.yaml'} is missing: not a run folder")
    check_writable(dest)
    aliases = {"series": parse_pairs(series_alias or [], "--series-alias"),
               "covariates": parse_pairs(covariate_alias or [], "--covariate-alias")}
    c = load_for_run(cohort, images=True).with_aliases(**aliases)
    with make_progress() as bar:
        task = bar.add_task("preprocessing", total=None)
        stats = write_predictions(run, c, cohort, dest, overwrite=overwrite, cache_dir=cache,
                                  progress=lambda d, n: bar.update(task, completed=d, total=n))
    out.print(f"{stats['patients']} patients scored in {stats['seconds_total']:.1f} s "
              f"({stats['seconds_per_patient']:.3f} s per patient); skipped: {len(stats['skipped'])}")
    for note in stats.get("notes", []):
        out.print(f"note: {note}")
    out.print(f"predictions: {dest / 'predictions.csv'}")
    if explain_ids:
        from hccprog.explain.run import explain_run

        scored = sorted({str(p) for p in read_ids(dest / "predictions.csv")})
        ids = scored if "all" in explain_ids else list(explain_ids)
        with make_progress() as bar:
            task = bar.add_task("explaining", total=None)
            summary = explain_run(run, c, ids, dest / "explanations", cache_dir=cache, overwrite=overwrite,
                                  progress=lambda label, d, n: bar.update(task, description=label, completed=d,
                                                                          total=n))
        for note in summary["notes"]:
            out.print(f"note: {note}")
        out.print(f"explanations: {dest / 'explanations'} (a card.html per patient)")
    if stats["validated"] and (dest / "report.html").exists():
        out.print(f"report: {dest / 'report.html'}")
    elif stats["validated"]:  # a response model: AUC against the new cohort's responses
        m = json.loads((dest / "metrics.json").read_text(encoding="utf-8"))
        for name, v in m["models"].items():
            auc = v.get("auc")
            txt = f"{auc['value']:.3f} ({auc['ci_lower']:.3f} to {auc['ci_upper']:.3f})" if auc else "n/a"
            out.print(f"{name}: response AUC {txt}; metrics: {dest / 'metrics.json'}")
