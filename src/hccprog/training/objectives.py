"""What a network's output means and how it is trained: the loss, the risk score read from the
output (higher = worse), and, when the output defines one, its own survival function.

* ``CoxObjective``: one log-hazard per patient, Cox partial likelihood; survival comes from a
  Breslow baseline fitted by the caller.
* ``BinaryObjective``: one logit per patient, binary cross-entropy against the label carried in
  the ``event`` array (e.g. progressive disease = 1 after TACE); the risk is the logit.
* ``DiscreteTimeObjective``: logits of the interval hazards of ``cuts`` (DLOP_Combin's yearly
  intervals), logistic-hazard likelihood; the risk is ``1 - S(horizon)``, the survival function
  is the product of interval survivals with a constant hazard inside each interval.
* ``RiskClassObjective``: logits of K ordered risk classes cut from the time to event
  (ProgSwin-UNETR's four strata), cross-entropy on the patients whose class is known; the risk is
  the expected class, survival comes from a Breslow baseline on it.
* ``CoxProgressionObjective``: a log-hazard and the logit of progression within a horizon
  (DMMGNet's PFS and 1-year progression), Cox partial likelihood plus weighted cross-entropy on
  the patients whose status at the horizon is known; the risk is the log-hazard.

Every objective declares ``class_columns``; those that also classify (a non-empty list) have
``probabilities(out)``, which the run writes as ``p_<column>`` in ``predictions.csv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from hccprog.cohort.spec import unit_factor
from hccprog.evaluation.classification import risk_class_labels
from hccprog.evaluation.survival import harrell_c
from hccprog.survival.endpoints import horizon_labels
from hccprog.training.losses import cox_loss, discrete_survival, logistic_hazard_loss


def _harrell(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:

    return {"val_c": float(harrell_c(time, event, risk))}


class _Objective:
    """What every objective shares: ``from_state`` rebuilds it from its ``state()``
    (:func:`objective_from_state` when the kind is not known in advance)."""

    kind: ClassVar[str]

    @classmethod
    def from_state(cls, state: dict):
        objective = objective_from_state(state)
        if not isinstance(objective, cls):
            raise ValueError(f"a saved '{state.get('kind')}' objective is not a {cls.__name__}")
        return objective


class CoxObjective(_Objective):
    kind = "cox"
    outputs = 1
    class_columns: ClassVar[list[str]] = []  # it does not classify

    def loss(self, out: torch.Tensor, event: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return cox_loss(out.view(-1), event, time)

    def predict_risk(self, out: np.ndarray) -> np.ndarray:
        return np.asarray(out, float).reshape(len(out))

    @staticmethod
    def torch_risk(out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors, differentiable (what saliency maps explain)."""
        return out.reshape(len(out))

    def predict_survival(self, out: np.ndarray, times) -> np.ndarray | None:
        return None

    def validation(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:
        return _harrell(time, event, risk)

    def state(self) -> dict:
        return {"kind": self.kind}


class DiscreteTimeObjective(_Objective):
    """Interval hazards ending at ``cuts`` (cohort time unit); ``horizon``: the time whose survival
    is the score (a cut, e.g. 3 years)."""

    kind = "discrete"
    class_columns: ClassVar[list[str]] = []

    def __init__(self, cuts: list[float], horizon: float) -> None:
        cuts = [float(c) for c in cuts]
        if not cuts or any(b <= a for a, b in zip([0.0, *cuts], cuts, strict=False)):
            raise ValueError(f"interval cuts must be positive and increasing, got {cuts}")
        self.cuts = cuts
        self.horizon = float(horizon)
        self.outputs = len(cuts)
        self._cuts_t = torch.tensor(cuts, dtype=torch.float64)

    def loss(self, out: torch.Tensor, event: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return logistic_hazard_loss(out, event, time, self._cuts_t)

    def predict_survival(self, out: np.ndarray, times) -> np.ndarray:
        """S(t) at ``times``: constant hazard inside each interval, the last one's beyond the end."""
        logits = torch.as_tensor(np.asarray(out, np.float64))
        s_end = discrete_survival(logits).numpy()  # (N, J)
        h = 1.0 / (1.0 + np.exp(-np.asarray(out, float)))
        edges = np.array([0.0, *self.cuts])
        widths = np.diff(edges)
        log_s_start = np.concatenate([np.zeros((len(s_end), 1)), np.log(np.clip(s_end[:, :-1], 1e-300, 1))], axis=1)
        rate = -np.log(np.clip(1.0 - h, 1e-12, 1.0)) / widths  # (N, J) constant hazard per interval
        out_s = np.empty((len(s_end), len(times)))
        for k, t in enumerate(np.asarray(times, float)):
            j = min(int(np.searchsorted(edges[1:], t, side="left")), len(widths) - 1)
            out_s[:, k] = np.exp(log_s_start[:, j] - rate[:, j] * (t - edges[j]))
        return out_s

    def predict_risk(self, out: np.ndarray) -> np.ndarray:
        return 1.0 - self.predict_survival(out, [self.horizon])[:, 0]

    def torch_risk(self, out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors, differentiable: 1 - S(horizon), constant hazard inside the interval."""
        edges = [0.0, *self.cuts]
        j = min(int(np.searchsorted(np.array(self.cuts), self.horizon, side="left")), len(self.cuts) - 1)
        log_s = torch.nn.functional.logsigmoid(-out)  # log(1 - h) per interval
        start = log_s[:, :j].sum(dim=1)
        frac = (self.horizon - edges[j]) / (edges[j + 1] - edges[j])
        return 1.0 - torch.exp(start + log_s[:, j].clamp(min=np.log(1e-12)) * frac)

    def validation(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:
        return _harrell(time, event, risk)

    def state(self) -> dict:
        return {"kind": self.kind, "cuts": self.cuts, "horizon": self.horizon}


class BinaryObjective(_Objective):
    kind = "binary"
    outputs = 1
    class_columns: ClassVar[list[str]] = ["PD"]  # p_PD: the probability of the positive class

    def loss(self, out: torch.Tensor, event: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(out.view(-1), event.to(out.dtype).view(-1))

    def predict_risk(self, out: np.ndarray) -> np.ndarray:
        return np.asarray(out, float).reshape(len(out))

    @staticmethod
    def torch_risk(out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors (the logit of PD)."""
        return out.reshape(len(out))

    def predict_survival(self, out: np.ndarray, times) -> None:
        return None

    @staticmethod
    def probabilities(out: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(out, float).reshape(len(out), 1)))

    def validation(self, time: np.ndarray, label: np.ndarray, risk: np.ndarray) -> dict:
        from sklearn.metrics import roc_auc_score

        return {"val_auc": float(roc_auc_score(label, risk))} if len(set(label.tolist())) == 2 else {}

    def state(self) -> dict:
        return {"kind": self.kind}


class RiskClassObjective(_Objective):
    """K = len(edges) + 1 ordered risk classes (cohort time unit edges), cross-entropy."""

    kind = "classes"

    def __init__(self, edges: list[float]) -> None:
        edges = [float(x) for x in edges]
        if not edges or any(b <= a for a, b in zip([0.0, *edges], edges, strict=False)):
            raise ValueError(f"class edges must be positive and increasing, got {edges}")
        self.edges = edges
        self.outputs = len(edges) + 1
        self.class_columns = [str(k) for k in range(self.outputs)]

    def labels(self, time: np.ndarray, event: np.ndarray) -> np.ndarray:
        return risk_class_labels(time, event, self.edges)

    def loss(self, out: torch.Tensor, event: torch.Tensor, time: torch.Tensor,
             labels: np.ndarray | None = None) -> torch.Tensor:
        """``labels``: user-given classes (-1 unknown) instead of the rule on time and event."""
        if labels is None:
            labels = self.labels(time.detach().cpu().numpy(), event.detach().cpu().numpy())
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        known = y >= 0
        if not bool(known.any()):
            return out.sum() * 0.0  # keeps the graph; no labelled patient in this batch
        return torch.nn.functional.cross_entropy(out[known].float(), y[known].to(out.device))

    @staticmethod
    def probabilities(out: np.ndarray) -> np.ndarray:
        z = np.asarray(out, float)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict_risk(self, out: np.ndarray) -> np.ndarray:
        """The expected class (0 .. K - 1)."""
        p = self.probabilities(out)
        return p @ np.arange(p.shape[1], dtype=float)

    @staticmethod
    def torch_risk(out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors, differentiable."""
        p = torch.softmax(out, dim=1)
        return p @ torch.arange(p.shape[1], dtype=p.dtype, device=p.device)

    def predict_survival(self, out: np.ndarray, times) -> None:
        return None

    def validation(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:
        return _harrell(time, event, risk)

    def state(self) -> dict:
        return {"kind": self.kind, "edges": self.edges}


class CoxProgressionObjective(_Objective):
    """Output (N, 2): log-hazard, logit of progression by ``horizon`` (cohort time unit)."""

    kind = "cox-progression"
    outputs = 2
    class_columns: ClassVar[list[str]] = ["progression"]

    def __init__(self, horizon: float, weight: float = 1.0) -> None:
        if horizon <= 0 or weight < 0:
            raise ValueError(f"horizon must be > 0 and weight >= 0, got {horizon}, {weight}")
        self.horizon = float(horizon)
        self.weight = float(weight)

    def loss(self, out: torch.Tensor, event: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        cox = cox_loss(out[:, 0], event, time)
        y = torch.as_tensor(horizon_labels(time.detach().cpu().numpy(), event.detach().cpu().numpy(), self.horizon))
        known = y >= 0
        if self.weight == 0 or not bool(known.any()):
            return cox
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            out[known, 1].float(), y[known].to(out.device, torch.float32))
        return cox + self.weight * bce

    def predict_risk(self, out: np.ndarray) -> np.ndarray:
        return np.asarray(out, float)[:, 0]

    @staticmethod
    def torch_risk(out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors (the log-hazard)."""
        return out[:, 0]

    @staticmethod
    def probabilities(out: np.ndarray) -> np.ndarray:
        """(N, 1): the predicted probability of progression by the horizon."""
        return 1.0 / (1.0 + np.exp(-np.asarray(out, float)[:, 1:2]))

    def predict_survival(self, out: np.ndarray, times) -> None:
        return None

    def validation(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:
        return _harrell(time, event, risk)

    def state(self) -> dict:
        return {"kind": self.kind, "horizon": self.horizon, "weight": self.weight}


def objective_from_state(state: dict):
    """The objective that ``state`` (an objective's ``state()``) describes, of whichever kind."""
    if state["kind"] == "binary":
        return BinaryObjective()
    if state["kind"] == "cox":
        return CoxObjective()
    if state["kind"] == "discrete":
        return DiscreteTimeObjective(state["cuts"], state["horizon"])
    if state["kind"] == "classes":
        return RiskClassObjective(state["edges"])
    if state["kind"] == "cox-progression":
        return CoxProgressionObjective(state["horizon"], state.get("weight", 1.0))
    raise ValueError(f"unknown objective {state['kind']!r}")


# ------------------------------------------------------------------------------ the registry


class CoxParams(BaseModel):
    """The Cox objective has no parameters."""

    model_config = ConfigDict(extra="forbid")


class ResponseParams(BaseModel):
    """The logistic response objective (PD = 1 against disease control) has no parameters."""

    model_config = ConfigDict(extra="forbid")


class DiscreteTimeParams(BaseModel):
    """Interval ends and the horizon whose survival is the score, in years (DLOP_Combin: yearly)."""

    model_config = ConfigDict(extra="forbid")
    intervals_years: list[float] = Field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0], min_length=1)
    score_years: float = Field(3.0, gt=0)


class RiskClassParams(BaseModel):
    """Class edges in months (K = len + 1 classes; the last edge is the OS threshold, 36 months in Yao
    et al. 2025; see :func:`~hccprog.evaluation.classification.risk_class_labels`), or the classes from
    ``class_column`` of the clinical table: integers 0 .. K-1 (higher = worse), blank = unknown."""

    model_config = ConfigDict(extra="forbid")
    class_edges_months: list[float] = Field(default_factory=lambda: [12.0, 24.0, 36.0], min_length=1)
    class_column: str | None = None


class CoxProgressionParams(BaseModel):
    """Progression by ``progression_months`` (12 in Tang et al. 2024), its cross-entropy added to the
    partial likelihood with ``progression_weight``."""

    model_config = ConfigDict(extra="forbid")
    progression_months: float = Field(12.0, gt=0)
    progression_weight: float = Field(1.0, ge=0)


RESPONSE_OBJECTIVE = "logistic-response"


@dataclass(frozen=True)
class ObjectiveKind:
    """An objective a model may declare (``ModelSpec.objective``): its typed parameters, the objective
    built from them (times in the cohort's unit; ``network`` is the model's resolved config), and what
    the network's config takes from them (e.g. the number of outputs)."""

    name: str
    params: type[BaseModel]
    build: Callable[[BaseModel, str, BaseModel], object]
    network: Callable[[BaseModel], dict] = lambda params: {}


def _cox_progression(params: CoxProgressionParams, unit: str, network: BaseModel):
    if not getattr(network, "progression_head", False):  # the head is off: a plain Cox network
        return CoxObjective()
    return CoxProgressionObjective(params.progression_months * unit_factor("months", unit), params.progression_weight)


OBJECTIVES: dict[str, ObjectiveKind] = {k.name: k for k in (
    ObjectiveKind("cox", CoxParams, lambda params, unit, network: CoxObjective()),
    ObjectiveKind("discrete", DiscreteTimeParams,
                  lambda params, unit, network: DiscreteTimeObjective(
                      [y * unit_factor("years", unit) for y in params.intervals_years],
                      params.score_years * unit_factor("years", unit)),
                  network=lambda params: {"intervals": len(params.intervals_years)}),
    ObjectiveKind("classes", RiskClassParams,
                  lambda params, unit, network: RiskClassObjective(
                      [m * unit_factor("months", unit) for m in params.class_edges_months]),
                  network=lambda params: {"classes": len(params.class_edges_months) + 1}),
    ObjectiveKind("cox-progression", CoxProgressionParams, _cox_progression),
    # every model on the response endpoint (one logit, binary cross-entropy)
    ObjectiveKind(RESPONSE_OBJECTIVE, ResponseParams, lambda params, unit, network: BinaryObjective()),
)}

#: Every objective parameter, by name: the kind it belongs to (config files written before the
#: registry held them at the top level of ``train:``).
PARAMETER_KINDS: dict[str, str] = {f: k.name for k in OBJECTIVES.values() for f in k.params.model_fields}


def objective_kind(name: str) -> ObjectiveKind:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective '{name}'; known: {', '.join(OBJECTIVES)}") from None
