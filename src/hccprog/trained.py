"""The trained-model file of a ``train`` run, ``models/<model>.json``: one typed description, written in
one place (:func:`write_trained_model`) and read by ``predict``, ``explain`` and the nomogram
(:func:`read_trained_model`).

It says what rebuilds the final model: the network's settings (its weights are ``models/<model>.pt``), or
the feature pipeline's plain-JSON state; the preprocessing; the series; the objective; the clinical
encoder and fusion; the risk-group cut-offs and Breslow baseline (survival) or the threshold (response).

``schema_version`` 1 is the first typed version; files written before it (no ``schema_version``) hold
the same fields and read as version 1. A file from a newer hccprog, or one whose fields are missing or
of the wrong type, is a :class:`~hccprog.errors.RunFolderError` naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator

from hccprog.errors import RunFolderError
from hccprog.runs import write_json

#: the version this hccprog writes and the newest it reads
SCHEMA_VERSION = 1


class TrainedModel(BaseModel):
    """``models/<model>.json`` of a ``train`` run. Task-specific entries beyond these fields (the
    fusion, the progression head's horizon, ...) are kept as they are (``extra="allow"``)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    model: str
    network: dict[str, Any]
    preprocessing: dict[str, Any]
    channels: list[str]
    task: str | None = None  # None: a survival endpoint (files before schema_version 1 had no task there)
    input: str | None = None  # "features": a pipeline on image features (no weights); else a network
    streams: Any = None  # the network's input streams, as its builder takes them
    best_epoch: int | None = None
    objective: dict[str, Any] | None = None
    clinical: dict[str, Any] | None = None
    pipeline: dict[str, Any] | None = None
    horizons: list[float] | None = None
    risk_groups: dict[str, Any] | None = None
    breslow: dict[str, Any] | None = None
    threshold: float | None = None
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> TrainedModel:
        need = ["pipeline"] if self.input == "features" else ["streams"]
        need += ["threshold"] if self.task == "response" else ["horizons", "risk_groups"]
        if self.input == "features" and self.task != "response":
            need.append("breslow")
        absent = [k for k in need if getattr(self, k) is None]
        if absent:
            raise ValueError(f"lacks {', '.join(absent)}")
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this hccprog reads "
                             f"({SCHEMA_VERSION}): update hccprog")
        return self

    @property
    def uses_features(self) -> bool:
        """A feature pipeline (plain JSON, no weights file) rather than a network."""
        return self.input == "features"

    def as_dict(self) -> dict[str, Any]:
        """The description as the plain mapping the readers index: the file's own values, uncoerced (a
        horizon written as 365 stays 365), extra entries included."""
        return dict(self._raw) if self._raw else self.model_dump(mode="json")


def _damaged(path: Path, why: str) -> RunFolderError:
    return RunFolderError(f"this run folder is damaged or was not written by hccprog: {why}", file=path,
                          hint="train the model again (hccprog train), or point at an intact copy of the run folder")


def _fields_text(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"field '{where}': {msg}" if where else msg)
    return "the model description " + "; ".join(parts)


def parse_trained_model(data: Any, path: Path) -> TrainedModel:
    """A :class:`TrainedModel` from decoded JSON; a damaged or newer description names ``path`` and the field."""
    if not isinstance(data, dict):
        raise _damaged(path, "not a model description (a JSON object expected)")
    try:
        model = TrainedModel.model_validate(data)
    except ValidationError as exc:
        raise _damaged(path, _fields_text(exc)) from None
    model._raw = dict(data)
    return model


def read_trained_model(path: str | Path) -> TrainedModel:
    """Read and check ``models/<model>.json``."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: the run was trained without a final model")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"not valid JSON ({exc.__class__.__name__} at character "
                             f"{getattr(exc, 'pos', getattr(exc, 'start', '?'))})") from None
    return parse_trained_model(data, path)


def write_trained_model(path: str | Path, description: dict[str, Any]) -> TrainedModel:
    """Check ``description`` as a :class:`TrainedModel` and write it (atomically), ``schema_version`` first."""
    path = Path(path)
    model = parse_trained_model({"schema_version": SCHEMA_VERSION, **description}, path)
    write_json(path, {"schema_version": SCHEMA_VERSION, **description})
    return model
