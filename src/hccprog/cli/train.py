"""``hccprog train`` and ``hccprog ablation``: a registered model, cross-validated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.table import Table

from hccprog.cli.app import ABLATION_MODELS, MODELS, ModelListCommand, app, out
from hccprog.cli.common import (
    cohort_path,
    configured,
    load_for_run,
    make_progress,
    read_config,
    run_and_summarise,
    validated_config,
)
from hccprog.errors import ConfigError, check_writable
from hccprog.models.registry import DEFAULT_ABLATION_MODEL, DEFAULT_MODEL

#: The options of ``train`` that a ``--config`` file settles itself.
_SETTLED_BY_CONFIG = ("model", "endpoint", "preset", "folds", "repeats", "seed", "epochs", "n_boot", "class_column")


def _options_given(ctx: typer.Context, names: tuple[str, ...]) -> list[str]:
    """The options among ``names`` that the command line gave (not their defaults)."""
    # by name: typer may carry its own copy of click's ParameterSource
    given = ("COMMANDLINE", "ENVIRONMENT")
    return [n for n in names if getattr(ctx.get_parameter_source(n), "name", None) in given]


def train_config(*, preset: str, model: str, endpoint: str, folds: int, repeats: int, seed: int,
                 epochs: int | None, n_boot: int, class_column: str | None):
    """The ``TrainRunConfig`` that ``train``'s options resolve to (a preset with the options over it)."""
    from hccprog.training.config import resolve_config

    return configured(lambda: resolve_config(
        preset, model=model, endpoint=endpoint, cv={"folds": folds, "repeats": repeats, "seed": seed},
        training={"seed": seed, **({"epochs": epochs} if epochs else {})}, n_boot=n_boot, seed=seed,
        class_column=class_column))


@app.command(cls=ModelListCommand)
def train(
    ctx: typer.Context,
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml (with images and masks).")],
    model: Annotated[str, typer.Option(help=f"Model name (hccprog.models registry): {MODELS}.")] = DEFAULT_MODEL,
    endpoint: Annotated[str, typer.Option(help="Survival endpoint from cohort.yaml (os, pfs, ttp), or `response` "
                                          "(PD vs disease control, from the cohort's response column).")] = "os",
    run: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("runs/train"),
    preset: Annotated[str, typer.Option(help="Named configuration: cpu (2-core sized), paper (the paper's sizes), "
                                        "tiny (smoke tests).")] = "cpu",
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats of the cross-validation.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, augmentation and bootstrap.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's maximum epochs.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder (default $HCCPROG_CACHE or "
                                                    "~/.cache/hccprog).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with train settings (a train run's config.yaml works: "
                                                     "its `train:`); it settles the model, endpoint, preset, "
                                                     "folds, seeds and epochs itself.")] = None,
    oracle: Annotated[str | None, typer.Option(help="FILE.csv:COLUMN, a known risk per patient (ids in "
                                                    "patient_id or the first column; e.g. a "
                                                    "synthetic cohort's truth.csv:log_hazard_os) reported as 'oracle'.")
                      ] = None,
    class_column: Annotated[str | None, typer.Option(help="Risk-class models (progswin): take the classes "
                                                        "0..K-1 (higher = worse; blank = unknown) from this "
                                                        "clinical column instead of the OS rule.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
) -> None:
    """Cross-validate a deep model (and RadCLN-style fusion with the clinical Cox score) beside the
    clinical baselines; refit it on all patients for `predict`; write the run folder and report.

    An interrupted run resumes at the fold it stopped in when started again with the same settings."""
    cohort = cohort_path(cohort)
    from hccprog.training.config import TrainRunConfig
    from hccprog.training.run import train_run

    if config is not None:
        clash = _options_given(ctx, _SETTLED_BY_CONFIG)
        if clash:
            flags = ", ".join("--" + n.replace("_", "-") for n in clash)
            raise ConfigError(f"{flags} and --config: the config file settles these itself, and the command line "
                              "would be ignored", file=config,
                              hint="edit the file's `train:` section (e.g. model:, cv: folds:), or leave out "
                                   "--config and use the options")
        cfg = validated_config(TrainRunConfig, read_config(config, "train"), config)
    else:
        cfg = train_config(preset=preset, model=model, endpoint=endpoint, folds=folds, repeats=repeats, seed=seed,
                           epochs=epochs, n_boot=n_boot, class_column=class_column)
    configured(cfg.network_config, config)
    check_writable(run)
    c = load_for_run(cohort, images=True, endpoint=cfg.endpoint, cv=cfg.cv)
    extra = _oracle_scores(oracle) if oracle else None
    run_and_summarise(run, "preprocessing", c.name, cfg.endpoint,
                       lambda tick: train_run(c, cohort, cfg, run, overwrite=overwrite, cache_dir=cache,
                                              extra_scores=extra, progress=tick))


@app.command(cls=ModelListCommand)
def ablation(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml (with images and masks).")],
    model: Annotated[str, typer.Option(
        help=f"A model with an ablation table: {ABLATION_MODELS}.")] = DEFAULT_ABLATION_MODEL,
    endpoint: Annotated[str, typer.Option(help="Survival endpoint (os, pfs, ttp) or `response`.")] = "pfs",
    run: Annotated[Path, typer.Option("--out", help="Folder for the table and one run folder per row.")] = Path(
        "runs/ablation"),
    preset: Annotated[str, typer.Option(help="Named configuration: cpu, paper, tiny.")] = "cpu",
    rows: Annotated[str | None, typer.Option(help="Comma-separated row labels (default: every row).")] = None,
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds (the same folds for every row).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, augmentation and bootstrap.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's maximum epochs.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder (shared by the rows).")] = None,
    oracle: Annotated[str | None, typer.Option(help="FILE.csv:COLUMN, a known risk per patient, reported as "
                                                    "'oracle' in every row's run.")] = None,
) -> None:
    """Run a model's ablation table (e.g. DMMGNet: baseline, +SGCM, +MMDFM, +CMTFM, pairs, all) with
    the same cross-validation folds and write it as ablation.md / ablation.csv.

    Rows already run with the same settings are reused, so an interrupted ablation resumes."""
    cohort = cohort_path(cohort)
    from hccprog.training.ablation import ablation_run

    cfg = train_config(preset=preset, model=model, endpoint=endpoint, folds=folds, repeats=1, seed=seed,
                       epochs=epochs, n_boot=n_boot, class_column=None)
    configured(cfg.network_config)
    check_writable(run)
    c = load_for_run(cohort, images=True, endpoint=cfg.endpoint, cv=cfg.cv)
    extra = _oracle_scores(oracle) if oracle else None
    wanted = [r.strip() for r in rows.split(",")] if rows else None
    started = time.perf_counter()
    with make_progress() as bar:
        task = bar.add_task("ablation", total=None)

        def tick(label: str, done: float, total: float) -> None:
            bar.update(task, description=label, completed=done, total=total)

        path, frame = configured(lambda: ablation_run(c, cohort, cfg, run, rows=wanted, cache_dir=cache,
                                                       extra_scores=extra, progress=tick))
    table = Table(title=f"{model} ablation: {c.name}, {cfg.endpoint}", title_justify="left")
    for col in frame.columns:
        table.add_column(str(col))
    for r in frame.itertuples(index=False):
        table.add_row(*[str(v) for v in r])
    out.print(table)
    out.print(f"table: {path} ({time.perf_counter() - started:.0f} s)")


def _oracle_scores(spec: str):
    import pandas as pd

    path, _, column = spec.rpartition(":")
    if not path or not column:
        raise ConfigError(f"--oracle: expected FILE.csv:COLUMN, got {spec!r}")
    try:
        frame = pd.read_csv(path, dtype=str)
    except OSError as exc:
        raise ConfigError(f"--oracle: cannot read {path}: {exc}") from None
    if column not in frame.columns:
        raise ConfigError(f"--oracle: {path} has no column {column!r}")
    id_col = "patient_id" if "patient_id" in frame.columns else frame.columns[0]  # else: the first column
    return frame.set_index(id_col)[[column]].astype(float).rename(columns={column: "oracle"})


@app.command("config", cls=ModelListCommand)
def show_config(
    model: Annotated[str, typer.Option(help=f"Model name (hccprog.models registry): {MODELS}.")] = DEFAULT_MODEL,
    preset: Annotated[str, typer.Option(help="Named configuration: cpu, paper, tiny.")] = "cpu",
    endpoint: Annotated[str, typer.Option(help="Survival endpoint (os, pfs, ttp) or `response`.")] = "os",
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats of the cross-validation.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, augmentation and bootstrap.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's maximum epochs.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    class_column: Annotated[str | None, typer.Option(help="Risk-class models: the clinical column of the "
                                                        "classes.")] = None,
) -> None:
    """Print the configuration that `train` with these options would run, as YAML, exactly as the run
    saves it in config.yaml (`train:` and the network with every default filled in, `network_resolved:`).
    The output is a valid `train --config` file; nothing is run or written."""
    import sys

    from hccprog.runs import yaml_text

    cfg = train_config(preset=preset, model=model, endpoint=endpoint, folds=folds, repeats=repeats, seed=seed,
                       epochs=epochs, n_boot=n_boot, class_column=class_column)
    net = configured(cfg.network_config)
    sys.stdout.write(yaml_text({"train": cfg.model_dump(mode="json"),
                                "network_resolved": net.model_dump(mode="json")}))
