"""``hccprog synth``: write a synthetic cohort."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from pydantic import ValidationError

from hccprog.cli.app import app, out
from hccprog.cli.common import make_progress, parse_triple, pydantic_text
from hccprog.errors import ConfigError, check_writable


class Modality(str, Enum):
    ct = "ct"
    mri = "mri"


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the cohort to.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    modality: Annotated[
        Modality, typer.Option(help="ct (NC/ART/PV phases) or mri (T2/ART/PV sequences).")
    ] = Modality.ct,
    series: Annotated[
        str | None, typer.Option(help="Comma-separated series to write (default: the modality's three).")
    ] = None,
    shape: Annotated[str, typer.Option(help="Volume size in voxels, IxJxK.")] = "96x96x48",
    spacing: Annotated[str, typer.Option(help="Voxel spacing in mm, IxJxK.")] = "4x4x5",
    followups: Annotated[int, typer.Option(min=0, max=4, help="Follow-up time points after TACE.")] = 1,
    missing_rate: Annotated[float, typer.Option(min=0, max=0.5, help="Share of missing lab values.")] = 0.04,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it holds a synthetic cohort.")] = False,
) -> None:
    """Write a synthetic HCC-TACE cohort (contract files, images, masks, truth.csv)."""
    from hccprog.synth import SynthConfig, synthesize

    try:
        cfg = SynthConfig(
            patients=patients,
            seed=seed,
            modality=modality.value,
            series=tuple(s.strip() for s in series.split(",")) if series else None,
            shape=parse_triple(shape, int, "--shape"),
            spacing=parse_triple(spacing, float, "--spacing"),
            followups=followups,
            missing_rate=missing_rate,
            workers=workers,
        )
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(pydantic_text(exc)) from None
    started = time.perf_counter()
    check_writable(out_dir)
    with make_progress() as bar:
        task = bar.add_task("synthesizing patients", total=patients)
        synthesize(out_dir, cfg, overwrite=overwrite, progress=lambda done, total: bar.update(task, completed=done))
    out.print(f"wrote {patients} synthetic patients ({cfg.modality}, {', '.join(cfg.series_names)}, "
              f"{followups} follow-up(s)) to {out_dir} in {time.perf_counter() - started:.1f} s")
    out.print(f"cohort file: {out_dir / 'cohort.yaml'}")
