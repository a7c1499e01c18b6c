"""``hccprog propagate``: carry baseline masks to the follow-up scans."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog.cli.app import app, out
from hccprog.cli.common import cohort_path, load_for_run, make_progress
from hccprog.errors import check_writable


@app.command()
def propagate(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder of the new cohort (masks, QC figures, images.csv).")],
    bspline: Annotated[bool, typer.Option(help="Add a B-spline stage after rigid and affine.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a folder written by an earlier propagate.")] = False,
) -> None:
    """Masks for every time point that has none, propagated from the nearest masked time point of the same
    patient by registration (rigid, affine, optionally B-spline; liver-region metric), written as a new cohort
    with mask_source marked, a QC figure per patient and time point, and propagation.csv (figure of merit).
    train and predict do the same on the fly when a cohort lacks masks; this makes it visible and checkable."""
    cohort = cohort_path(cohort)
    from hccprog.preprocessing.masks import propagate_cohort
    from hccprog.preprocessing.register import RegistrationConfig

    check_writable(dest)
    c = load_for_run(cohort, images=True)
    started = time.perf_counter()
    with make_progress() as bar:
        task = bar.add_task("registering", total=None)
        merit = propagate_cohort(c, cohort, dest, cfg=RegistrationConfig(bspline=bspline), overwrite=overwrite,
                                 progress=lambda d, n: bar.update(task, completed=d, total=n))
    done = merit[merit["status"] == "propagated"] if len(merit) else merit
    out.print(f"{len(done)} time point(s) got a propagated mask in {time.perf_counter() - started:.1f} s"
              + (f"; liver NCC median {done['ncc_before'].median():.2f} -> {done['ncc_after'].median():.2f}"
                 if len(done) else ""))
    for row in merit[merit["status"] != "propagated"].itertuples() if len(merit) else []:
        out.print(f"note: {row.patient_id} {row.timepoint}: {row.status}")
    out.print(f"QC figures: {dest / 'qc'}; figure of merit: {dest / 'propagation.csv'}")
    out.print(f"cohort file: {dest / 'cohort.yaml'}")
