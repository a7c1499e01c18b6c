"""``hccprog features``: radiomic features of a cohort."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog import __version__
from hccprog.cli.app import app, out
from hccprog.cli.common import cohort_path, load_for_run, make_progress, read_config, validated_config, write_table
from hccprog.errors import ConfigError, OutputExistsError, check_writable


@app.command()
def features(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml.")],
    dest: Annotated[Path, typer.Option("--out", help="The table to write: .parquet or .csv.")] = Path(
        "features.parquet"),
    config: Annotated[Path | None, typer.Option(help="YAML of radiomics settings (FeatureConfig: resample_mm, "
                                                "bin_width_ct, filters, regions, ring_mm, ...).")] = None,
    perturbations: Annotated[bool, typer.Option(help="Also the rows of the tumor's eroded and dilated masks "
                                                "(column perturbation).")] = False,
    cache: Annotated[Path | None, typer.Option(help="Feature cache folder (default $HCCPROG_CACHE or "
                                               "~/.cache/hccprog).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing table.")] = False,
) -> None:
    """Radiomics features (PyRadiomics, IBSI-aligned settings) of every patient, time point, series and region
    (tumor, liver, peritumoral ring) as one long table: patient_id, timepoint, series, region, feature, value.
    The settings are written beside it (<name>.settings.yaml); extraction is cached by content."""
    cohort = cohort_path(cohort)
    from hccprog.preprocessing.features import FeatureConfig, extract_features
    from hccprog.runs import write_yaml

    if dest.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {dest}: the table is written as .parquet or .csv")
    if dest.exists() and not overwrite:
        raise OutputExistsError("exists; give --overwrite to replace it", file=dest)
    check_writable(dest, what="output table", file=True)
    cfg = validated_config(FeatureConfig, read_config(config, "features"), config)
    c = load_for_run(cohort, images=True)
    started = time.perf_counter()
    with make_progress() as bar:
        task = bar.add_task("extracting image features", total=None)
        got = extract_features(c, cfg, cache_dir=cache, progress=lambda d, n: bar.update(task, completed=d, total=n))
    table = got.table if perturbations else got.table[got.table["perturbation"] == "original"].drop(
        columns="perturbation")
    write_table(dest, table.drop(columns="timepoint_index"))
    write_yaml(dest.with_name(f"{dest.stem}.settings.yaml"),
               {"hccprog_version": __version__, "cohort": str(cohort.resolve()),
                "features": cfg.model_dump(mode="json"), "series": got.channels, "stats": got.stats,
                "skipped": got.skipped, "imputed": got.imputed})
    for pid, why in got.skipped.items():
        out.print(f"note: {pid} skipped: {why}")
    out.print(f"{got.stats['patients']} patients, {got.stats['timepoints']} time points, {len(table)} rows in "
              f"{time.perf_counter() - started:.1f} s: {dest}")
