"""Load a cohort (``cohort.yaml`` + tables + images) into a typed :class:`Cohort`, reporting
every problem at once. Input files are only ever opened for reading."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from hccprog.cohort.files import FileChecks
from hccprog.cohort.issues import CohortError, Report
from hccprog.cohort.model import (
    Cohort,
    ImageRef,
    MaskRef,
    Outcome,
    Patient,
    Series,
    TimePoint,
)
from hccprog.cohort.scores import parse_response, parse_score
from hccprog.cohort.spec import CohortSpec, CovariateSpec
from hccprog.cohort.tables import (
    Table,
    TableError,
    is_missing,
    normalize_category,
    parse_number,
    read_table,
)
from hccprog.safe_yaml import YamlError, compose_yaml, construct, read_text

#: Share of missing values above which a covariate draws a warning.
MANY_MISSING = 0.2

IMAGE_COLUMNS = ("timepoint", "series", "image")

_TRANSFORMS: dict[str, Callable[[float], float]] = {
    "none": lambda x: x,
    "log": math.log,
    "log1p": math.log1p,
    "log10": math.log10,
    "log2": math.log2,
    "sqrt": math.sqrt,
}


@dataclass
class LoadResult:
    cohort: Cohort | None
    report: Report

    @property
    def ok(self) -> bool:
        return self.report.ok and self.cohort is not None


def load_cohort(
    path: str | os.PathLike,
    *,
    check_images: bool = True,
    check_pixels: bool = True,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Read and check a cohort.

    ``check_images`` reads every image's and mask's header (existence, readability,
    geometry, plausible spacing and extent); ``check_pixels`` also decodes every voxel, once per file
    (truncated or corrupt data, NaN, masks that are empty, not integer, or an image). With
    ``strict`` a :class:`CohortError` is raised when any error was found.
    ``progress(done, total)`` is called while images are checked.
    """
    loader = _Loader(cohort_file(path), check_images, check_pixels, progress)
    result = loader.run()
    if strict and not result.ok:
        raise CohortError(result.report)
    return result


def cohort_file(path: str | os.PathLike) -> Path:
    """The cohort file a user meant: ``path`` itself, or ``path/cohort.yaml`` when given a folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("cohort.yaml", "cohort.yml"):
            if (path / name).is_file():
                return path / name
    return path


class _Loader:
    def __init__(self, path: Path, check_images: bool, check_pixels: bool, progress) -> None:
        self.path = path
        self.root = path.parent
        self.check_images = check_images
        self.check_pixels = check_pixels
        self.progress = progress
        self.report = Report()
        self.yaml_name = path.name

    # ------------------------------------------------------------------------ helpers
    def rel(self, p: Path) -> str:
        """How a file is named in messages: relative to the working folder when inside it."""
        p = Path(os.path.abspath(p))
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.root / p)

    # --------------------------------------------------------------------------- yaml
    def read_spec(self) -> CohortSpec | None:
        file = self.rel(self.path)
        if self.path.is_dir():
            self.report.error("file-missing", file, "is a folder without a cohort.yaml: give the cohort file "
                                                    "(see `hccprog synth` or the import commands for examples)")
            return None
        if not self.path.is_file():
            self.report.error("file-missing", file, "cohort file does not exist")
            return None
        try:
            node = compose_yaml(read_text(self.path), file=file)
            data = construct(node, file=file)
        except YamlError as exc:
            self.report.error(exc.code, file, exc.message, row=exc.row, column=exc.column)
            return None
        if not isinstance(data, dict):
            self.report.error("yaml-schema", file, "expected a mapping of keys (name, clinical, ...)")
            return None
        lines = _key_lines(node)
        try:
            spec = CohortSpec.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"])
                self.report.error("yaml-schema", file, err["msg"],
                                  row=_closest_line(lines, err["loc"]), column=loc or None)
            return None
        for key in (spec.model_extra or {}):
            self.report.warning("yaml-unknown-key", file, f"unknown key {key!r} ignored",
                                row=lines.get((key,)), column=key)
        return spec

    # ----------------------------------------------------------------------- clinical
    def read(self, relative: str, what: str, sheet=None) -> Table | None:
        p = self.resolve(relative)
        if not p.is_file():
            self.report.error("file-missing", self.rel(self.path),
                              f"{what} table {relative!r} does not exist", column=what)
            return None
        try:
            return read_table(p, sheet)
        except (TableError, ValueError, OSError, ImportError) as exc:
            self.report.error("table-unreadable", self.rel(p), f"cannot be read as a table: {exc}")
            return None

    def run(self) -> LoadResult:
        spec = self.read_spec()
        if spec is None:
            return LoadResult(None, self.report)
        table = self.read(spec.clinical, "clinical", spec.clinical_sheet)
        if table is None:
            return LoadResult(None, self.report)
        cfile = self.rel(table.path)
        frame = table.frame
        if spec.id_column not in frame.columns:
            self.report.error("column-missing", cfile,
                              f"id column {spec.id_column!r} (id_column) not in the table",
                              row=1, column=spec.id_column)
            return LoadResult(None, self.report)
        self.check_columns(spec, table)

        patients: dict[str, Patient] = {}
        first_row: dict[str, int] = {}
        for i, rec in enumerate(frame.to_dict("records")):
            row = table.row_of(i)
            pid = str(rec[spec.id_column]).strip()
            if is_missing(pid):
                self.report.error("id-missing", cfile, "empty patient id", row, spec.id_column)
                continue
            if pid in first_row:
                self.report.error("duplicate-id", cfile,
                                  f"patient id {pid!r} already on row {first_row[pid]}",
                                  row, spec.id_column)
                continue
            first_row[pid] = row
            patients[pid] = self.read_patient(spec, rec, pid, row, cfile)
        self.check_missingness(spec, patients, cfile)
        self.check_events(spec, patients, cfile)

        if spec.images:
            self.read_images(spec, patients)
        n_without = sum(not p.has_images for p in patients.values())
        if spec.images and n_without:
            examples = [p.id for p in patients.values() if not p.has_images][:5]
            self.report.warning("patient-without-images", cfile,
                                f"{n_without} patient(s) have no images (e.g. {examples})")
        indexed = frame.set_index(spec.id_column, drop=False)
        indexed = indexed[~indexed.index.duplicated()]
        cohort = Cohort(spec=spec, root=self.root, patients=patients, table=indexed)
        return LoadResult(cohort, self.report)

    def check_columns(self, spec: CohortSpec, table: Table) -> None:
        cfile = self.rel(table.path)
        cols = set(table.columns)

        def need(column: str, what: str, code: str = "column-missing") -> None:
            if column not in cols:
                self.report.error(code, cfile, f"{what} column {column!r} not in the table",
                                  row=1, column=column)

        for name, ep in spec.endpoints.items():
            need(ep.time, f"endpoint '{name}' time")
            need(ep.event, f"endpoint '{name}' event")
        if spec.response:
            need(spec.response, "response")
        for name in spec.covariates or {}:
            need(name, "declared covariate", "covariate-absent")
        for score, column in spec.scores.items():
            need(column, f"score '{score}'", "score-absent")

    def covariate_specs(self, spec: CohortSpec, columns: list[str]) -> dict[str, CovariateSpec | None]:
        if spec.covariates is not None:
            return {n: c for n, c in spec.covariates.items() if n in columns}
        used = {spec.id_column, spec.response, *spec.scores.values()}
        for ep in spec.endpoints.values():
            used.update((ep.time, ep.event))
        return {c: None for c in columns if c not in used}

    def read_patient(self, spec: CohortSpec, rec: dict, pid: str, row: int, cfile: str) -> Patient:
        outcomes: dict[str, Outcome | None] = {}
        for name, ep in spec.endpoints.items():
            outcomes[name] = self.read_outcome(name, ep.time, ep.event, rec, row, cfile,
                                               spec.days_per_unit)
        response = None
        if spec.response and spec.response in rec:
            try:
                response = parse_response(rec[spec.response])
            except ValueError as exc:
                self.report.error("response-invalid", cfile, str(exc), row, spec.response)
        scores: dict[str, float | None] = {}
        for score, column in spec.scores.items():
            if column in rec:
                try:
                    scores[score] = parse_score(score, rec[column])
                except ValueError as exc:
                    self.report.error("score-invalid", cfile, str(exc), row, column)
                    scores[score] = None
        covariates: dict[str, float | str | None] = {}
        for name, cspec in self.covariate_specs(spec, list(rec)).items():
            covariates[name] = self.read_covariate(name, cspec, rec[name], row, cfile)
        return Patient(id=pid, row=row, outcomes=outcomes, response=response,
                       covariates=covariates, scores=scores)

    def read_outcome(self, name, tcol, ecol, rec, row, cfile, days_per_unit) -> Outcome | None:
        if tcol not in rec or ecol not in rec:
            return None
        bad = False
        time = event = None
        try:
            time = parse_number(rec[tcol])
            if time is not None and time < 0:
                self.report.error("time-negative", cfile, f"negative time {rec[tcol]!r}", row, tcol)
                bad = True
        except ValueError:
            self.report.error("time-non-numeric", cfile, f"time {rec[tcol]!r} is not a number",
                              row, tcol)
            bad = True
        cell = rec[ecol]
        if not is_missing(cell):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if value not in (0.0, 1.0):
                self.report.error("event-invalid", cfile,
                                  f"event {cell!r} is not 0 (censored) or 1 (event)", row, ecol)
                bad = True
            else:
                event = bool(value)
        if bad:
            return None
        if time is None or event is None:
            missing = tcol if time is None else ecol
            self.report.warning("outcome-missing", cfile,
                                f"endpoint '{name}' missing: patient left out of it", row, missing)
            return None
        return Outcome(time=time * days_per_unit, event=event)

    def read_covariate(self, name, cspec: CovariateSpec | None, cell: str, row, cfile):
        if is_missing(cell):
            return None
        if cspec is None:  # undeclared: numeric when it parses, else a category
            try:
                return parse_number(cell)
            except ValueError:
                return normalize_category(cell)
        if cspec.type == "numeric":
            try:
                value = parse_number(cell)
            except ValueError:
                self.report.error("covariate-invalid", cfile,
                                  f"numeric covariate has non-numeric value {cell!r}", row, name)
                return None
            try:
                return _TRANSFORMS[cspec.transform](value)  # type: ignore[arg-type]
            except ValueError:
                self.report.error("covariate-invalid", cfile,
                                  f"value {cell!r} outside the domain of transform "
                                  f"'{cspec.transform}'", row, name)
                return None
        value = normalize_category(cell)
        if cspec.type == "ordinal":
            levels = [normalize_category(str(v)) for v in cspec.levels or []]
            if value not in levels:
                self.report.error("covariate-invalid", cfile,
                                  f"value {cell!r} is not one of the levels {levels}", row, name)
                return None
            return float(levels.index(value))
        if cspec.levels is not None:
            levels = [normalize_category(str(v)) for v in cspec.levels]
            if value not in levels:
                self.report.error("covariate-invalid", cfile,
                                  f"value {cell!r} is not one of the levels {levels}", row, name)
                return None
        return value

    def check_events(self, spec: CohortSpec, patients: dict[str, Patient], cfile: str) -> None:
        """An endpoint without any event can be neither learned nor evaluated: a warning, or an error
        when no endpoint has one."""
        if not patients or not spec.endpoints:
            return
        empty = []
        for name, ep in spec.endpoints.items():
            known = [p.outcomes.get(name) for p in patients.values() if p.outcomes.get(name) is not None]
            if known and not any(o.event for o in known):
                empty.append((name, ep.event, len(known)))
        for name, column, n in empty:
            severity = self.report.error if len(empty) == len(spec.endpoints) else self.report.warning
            severity("endpoint-no-events", cfile, f"endpoint '{name}': none of the {n} patients has the event (all "
                                                  "censored): nothing to learn or evaluate; check the coding "
                                                  "(1 = event, 0 = censored)", column=column)

    def check_missingness(self, spec: CohortSpec, patients: dict[str, Patient], cfile: str) -> None:
        if not patients:
            self.report.error("no-patients", cfile, "the clinical table holds no patient")
            return
        names = list(next(iter(patients.values())).covariates)
        n = len(patients)
        for name in names:
            missing = sum(p.covariates.get(name) is None for p in patients.values())
            if missing and missing == n:
                self.report.warning("covariate-empty", cfile,
                                    f"no value for any of the {n} patients: left out of every model (there is "
                                    "nothing to impute it from), and so are the scores computed from it "
                                    "(the baselines table says which)", column=name)
            elif missing:
                code = "covariate-many-missing" if missing / n > MANY_MISSING else "covariate-missing"
                self.report.warning(code, cfile,
                                    f"{missing} of {n} values missing ({100 * missing / n:.0f}%): imputed by "
                                    "the clinical models (training median or mode; recorded as covariate-imputed)",
                                    column=name)
            if spec.covariates is not None and name in spec.covariates:
                values = {p.covariates[name] for p in patients.values()
                          if p.covariates.get(name) is not None}
                if spec.covariates[name].type == "binary" and len(values) > 2:
                    self.report.error("covariate-invalid", cfile,
                                      f"binary covariate has {len(values)} distinct values "
                                      f"{sorted(map(str, values))[:6]}", column=name)
        if spec.response:
            missing = sum(p.response is None for p in patients.values())
            if missing:
                self.report.warning("response-missing", cfile,
                                    f"{missing} of {n} patients have no response", column=spec.response)

    # ------------------------------------------------------------------------- images
    def read_images(self, spec: CohortSpec, patients: dict[str, Patient]) -> None:
        table = self.read(spec.images, "images")  # type: ignore[arg-type]
        if table is None:
            return
        ifile = self.rel(table.path)
        cols = table.columns
        id_col = spec.id_column if spec.id_column in cols else (
            "patient_id" if "patient_id" in cols else None)
        missing = [c for c in IMAGE_COLUMNS if c not in cols]
        if id_col is None:
            missing.insert(0, spec.id_column)
        for c in missing:
            self.report.error("column-missing", ifile, f"required column {c!r} not in the table",
                              row=1, column=c)
        if missing:
            return
        labels = tuple((name, tuple([v] if isinstance(v, int) else v))
                       for name, v in spec.labels.items())

        # (patient) -> label -> {"day": set, "order": first row, "series": {name: Series}}
        found: dict[str, dict[str, dict]] = defaultdict(dict)
        seen_series: dict[tuple[str, str, str], int] = {}
        checks: list[tuple[int, str, Path, Path | None]] = []
        for i, rec in enumerate(table.frame.to_dict("records")):
            row = table.row_of(i)
            pid = rec[id_col].strip()
            if is_missing(pid):
                self.report.error("id-missing", ifile, "empty patient id", row, id_col)
                continue
            if pid not in patients:
                self.report.error("unknown-id", ifile,
                                  f"patient id {pid!r} is not in the clinical table", row, id_col)
                continue
            ok = True
            for c in IMAGE_COLUMNS:
                if is_missing(rec[c]):
                    self.report.error("value-missing", ifile, f"empty '{c}'", row, c)
                    ok = False
            day = None
            if "day" in rec and not is_missing(rec["day"]):
                try:
                    day = parse_number(rec["day"])
                except ValueError:
                    self.report.error("day-invalid", ifile, f"day {rec['day']!r} is not a number",
                                      row, "day")
                    ok = False
            if not ok:
                continue
            tp, given_series = rec["timepoint"].strip(), rec["series"].strip()
            series = spec.series_aliases.get(given_series, given_series)
            declared = spec.declared_modality(given_series, series)
            key = (pid, tp, series)
            if key in seen_series:
                self.report.error("duplicate-series", ifile,
                                  f"{pid} / {tp} / {series} already on row {seen_series[key]}",
                                  row, "series")
                continue
            seen_series[key] = row
            image = self.resolve(rec["image"])
            mask = self.resolve(rec["mask"]) if "mask" in rec and not is_missing(rec["mask"]) else None
            entry = found[pid].setdefault(tp, {"days": {}, "order": i, "series": {}})
            if day is not None:
                entry["days"].setdefault(day, row)
            entry["series"][series] = Series(
                name=series,
                image=ImageRef(image, series=given_series, modality=declared),
                mask=MaskRef(mask, labels, spec.resample_masks) if mask else None,
                source_row=row,
            )
            checks.append((row, rec["image"], image, mask, given_series, declared))

        for pid, tps in found.items():
            ordered = []
            for label, entry in tps.items():
                if len(entry["days"]) > 1:
                    rows = sorted(entry["days"].values())
                    self.report.error("day-inconsistent", ifile,
                                      f"time point {label!r} of {pid} has different days "
                                      f"{sorted(entry['days'])}", rows[-1], "day")
                day = min(entry["days"]) if entry["days"] else None
                ordered.append((label, day, entry))
            if all(d is not None for _, d, _ in ordered):
                ordered.sort(key=lambda t: (t[1], t[2]["order"]))
            else:
                ordered.sort(key=lambda t: t[2]["order"])
                if any(d is not None for _, d, _ in ordered):
                    self.report.warning("day-partial", ifile,
                                        f"{pid}: 'day' given for some time points only; "
                                        "ordered by first appearance", column="day")
            patients[pid].timepoints = tuple(
                TimePoint(label=label, day=day, series=entry["series"]) for label, day, entry in ordered
            )
        self.report_fills(spec, patients, ifile)
        if self.check_images:
            FileChecks(self.report, self.rel, check_pixels=self.check_pixels,
                       progress=self.progress).run(spec, checks, ifile)

    def report_fills(self, spec: CohortSpec, patients: dict[str, Patient], ifile: str) -> None:
        """Warnings, before any run, for what models will fill in: time points without a mask,
        series a time point lacks, patients with fewer time points than others."""
        def listed(ids: list[str]) -> str:
            return ", ".join(ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")

        with_images = [p for p in patients.values() if p.has_images]
        if not with_images:
            return
        unmasked: dict[str, list[str]] = defaultdict(list)
        lacking: dict[tuple[str, str], list[str]] = defaultdict(list)
        maskless: list[str] = []  # no mask at any time point: nothing to propagate from
        all_series = list(dict.fromkeys(n for p in with_images for t in p.timepoints for n in t.series))
        for p in with_images:
            masked = [any(s.mask is not None for s in t.series.values()) for t in p.timepoints]
            if not any(masked):
                maskless.append(p.id)
            for t, has_mask in zip(p.timepoints, masked, strict=True):
                if not has_mask and any(masked):
                    unmasked[t.label].append(p.id)
                for name in all_series:
                    if name not in t.series:
                        lacking[(t.label, name)].append(p.id)
        what = {"propagate": "a mask will be propagated from the nearest masked time point of the same patient "
                             "by registration (missing_masks: propagate; recorded per patient as mask-propagated)",
                "missing": "the time point will be treated as missing and the previous one carried forward "
                           "(missing_masks: missing)"}[spec.missing_masks]
        for label, ids in unmasked.items():
            self.report.warning("timepoint-without-mask", ifile,
                                f"time point '{label}' has no mask for {len(ids)} patient(s) ({listed(ids)}): "
                                f"{what}", column="mask")
        if maskless:
            self.report.warning("patient-without-mask", ifile,
                                f"{len(maskless)} patient(s) have no mask at any time point ({listed(maskless)}): "
                                "there is no mask to propagate from, so models that read masks (image networks, "
                                "radiomics) leave them out; clinical models still use them", column="mask")
        for (label, name), ids in lacking.items():
            self.report.warning("series-missing", ifile,
                                f"{len(ids)} patient(s) lack series '{name}' at time point '{label}' ({listed(ids)}): "
                                "a model reading it fills it with another series of that time point "
                                "(recorded as series-filled)", column="series")
        most = max(len(p.timepoints) for p in with_images)
        fewer = [p.id for p in with_images if len(p.timepoints) < most]
        if fewer:
            self.report.warning("timepoints-missing", ifile,
                                f"{len(fewer)} patient(s) have fewer than {most} time points ({listed(fewer)}): "
                                "a model reading more carries the last one forward (LOCF; recorded as "
                                "timepoint-carried-forward)", column="timepoint")


# ------------------------------------------------------------------------ yaml lines


def _key_lines(node) -> dict[tuple, int]:
    """(key, subkey, ...) -> 1-based line number, from a composed YAML node tree."""
    out: dict[tuple, int] = {}

    def walk(n, prefix: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*prefix, k.value)
                out[key] = k.start_mark.line + 1
                walk(v, key)

    walk(node, ())
    return out


def _closest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(str(x) for x in loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
