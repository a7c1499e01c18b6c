"""``hccprog import``: a public TACE dataset as downloaded, to a cohort folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog.cli.app import app, out
from hccprog.cli.common import make_progress
from hccprog.errors import ConfigError

import_app = typer.Typer(help="Bring a public TACE dataset in, as downloaded: writes a cohort folder (cohort.yaml, "
                              "images.csv) that every command reads. Input files are never modified.",
                         no_args_is_help=True)


app.add_typer(import_app, name="import")


def _print_import(res, cohort_file: Path) -> None:
    out.print(f"wrote {res.out}: {res.patients} patients, {res.timepoints} time points, {res.images} image series, "
              f"{res.masks} with a mask")
    for note in res.notes[:20]:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if len(res.notes) > 20:
        out.print(f"... and {len(res.notes) - 20} more notes in {res.out / 'import'}")
    if getattr(res, "uncertain", None):
        out.print(f"[yellow]{len(res.uncertain)} series with an uncertain phase[/] (listed in "
                  f"{res.out / 'import' / 'phases_uncertain.yaml'}; edit it and pass it back with --phases):")
        for r in res.uncertain[:15]:
            out.print(f"  {r['folder']}: {r['phase'] or 'not used'} ({r['reason']})", highlight=False, soft_wrap=True)
    out.print(f"next: hccprog validate {cohort_file}")


@import_app.command("hcc-tace-seg")
def import_hcc_tace_seg(
    download: Annotated[Path, typer.Argument(help="The TCIA download folder (<patient>/<study>/<series>/*.dcm, "
                                                  "with or without metadata.csv).")],
    clinical: Annotated[Path, typer.Option(help="HCC-TACE-Seg_clinical_data-V2.xlsx (or its 'data table' as CSV).")],
    dest: Annotated[Path, typer.Option("--out", help="Cohort folder to write.")],
    phases: Annotated[Path | None, typer.Option(help="YAML mapping series (SeriesInstanceUID or folder) to NC, ART, "
                                                     "PV, DEL or skip; overrides the phases read from the DICOM "
                                                     "headers (import/phases_uncertain.yaml is a template).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a cohort folder written by an earlier import.")] = False,
) -> None:
    """HCC-TACE-Seg (TCIA): studies ordered by date into time points (baseline: the pre-TACE study with the
    DICOM-SEG), series phases from DICOM tags and descriptions, DICOM-SEG masks on their referenced series,
    cohort.yaml from the clinical table (weeks; OS, TTP, mRECIST, scores, covariates)."""
    from hccprog.importers.hcc_tace_seg import import_hcc_tace_seg as run_import

    with make_progress() as bar:
        task = bar.add_task("reading DICOM headers", total=None)
        res = run_import(download, clinical, dest, phases=phases, overwrite=overwrite,
                         progress=lambda d, n: bar.update(task, completed=d, total=n))
    _print_import(res, dest / "cohort.yaml")


@import_app.command("waw-tace")
def import_waw_tace(
    dataset: Annotated[Path, typer.Argument(help="The WAW-TACE folder (<id>/<id>_<k>_scan.nii.gz, "
                                                 "tumor_masks_*/<id>/*.nrrd, TotalSegmentator output, XLSX).")],
    dest: Annotated[Path, typer.Option("--out", help="Cohort folder to write.")],
    clinical: Annotated[Path | None, typer.Option(help="The clinical XLSX (default: the .xlsx in the folder).")] = None,
    event_column: Annotated[str | None, typer.Option(help="The binary progression column (default: found by its "
                                                          "name and definition).")] = None,
    time_column: Annotated[str | None, typer.Option(help="The follow-up time column (default: found by its name "
                                                         "and definition).")] = None,
    time_unit: Annotated[str | None, typer.Option(help="days, weeks, months or years (default: from the time "
                                                       "column's definition).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a cohort folder written by an earlier import.")] = False,
) -> None:
    """WAW-TACE: four CT phases per patient, per-lesion tumor masks merged and resampled onto each phase, the
    TotalSegmentator liver where present, and the clinical XLSX (progression and follow-up as the endpoint)."""
    from hccprog.importers.waw_tace import import_waw_tace as run_import

    if time_unit is not None and time_unit not in ("days", "weeks", "months", "years"):
        raise ConfigError(f"--time-unit: {time_unit!r} is not days, weeks, months or years")
    with make_progress() as bar:
        task = bar.add_task("reading scans and masks", total=None)
        res = run_import(dataset, dest, clinical=clinical, event=event_column, time=time_column, unit=time_unit,
                         overwrite=overwrite, progress=lambda d, n: bar.update(task, completed=d, total=n))
    for key, value in res.matched.items():
        out.print(f"clinical {key}: {value}", highlight=False, soft_wrap=True)
    _print_import(res, dest / "cohort.yaml")
