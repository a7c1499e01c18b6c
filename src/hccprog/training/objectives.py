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
from typing import ClassVar, Literal

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
    """K ordered risk classes, cross-entropy.

    ``rule="os-edges"``: K = len(edges) + 1 classes of the time to event (cohort time unit edges,
    :func:`~hccprog.evaluation.classification.risk_class_labels`); ``rule="os-severity"``: the four
    classes of Yao et al. 2025 (survival below or beyond ``edges[0]``, each split by an expert's
    severity read, :func:`~hccprog.evaluation.classification.os_severity_labels`), whose labels need
    the clinical table and are given to :meth:`loss`. ``worst_first``: class 0 is the worst (the
    paper's numbering); the risk (:meth:`predict_risk`) is higher = worse either way."""

    kind = "classes"

    def __init__(self, edges: list[float], *, worst_first: bool = False, rule: str = "os-edges") -> None:
        edges = [float(x) for x in edges]
        if not edges or any(b <= a for a, b in zip([0.0, *edges], edges, strict=False)):
            raise ValueError(f"class edges must be positive and increasing, got {edges}")
        if rule not in ("os-edges", "os-severity"):
            raise ValueError(f"unknown risk-class rule {rule!r} (os-edges, os-severity)")
        if rule == "os-severity" and len(edges) != 1:
            raise ValueError(f"the os-severity rule has one survival threshold, got {edges}")
        self.edges = edges
        self.rule = rule
        self.worst_first = bool(worst_first)
        self.outputs = 4 if rule == "os-severity" else len(edges) + 1
        self.class_columns = [str(k) for k in range(self.outputs)]

    def labels(self, time: np.ndarray, event: np.ndarray) -> np.ndarray:
        """The classes of the ``os-edges`` rule (the ``os-severity`` rule also needs the severity read:
        its labels come from the clinical table and are passed to :meth:`loss`)."""
        if self.rule != "os-edges":
            raise ValueError("the os-severity risk classes need each patient's severity read: give the labels")
        return risk_class_labels(time, event, self.edges, worst_first=self.worst_first)

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
        """The expected class (0 .. K - 1) counted from the best class: higher = worse."""
        p = self.probabilities(out)
        k = np.arange(p.shape[1], dtype=float)
        return p @ (k[::-1] if self.worst_first else k)

    def torch_risk(self, out: torch.Tensor) -> torch.Tensor:
        """:meth:`predict_risk` on tensors, differentiable."""
        p = torch.softmax(out, dim=1)
        k = torch.arange(p.shape[1], dtype=p.dtype, device=p.device)
        return p @ (k.flip(0) if self.worst_first else k)

    def predict_survival(self, out: np.ndarray, times) -> None:
        return None

    def validation(self, time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict:
        return _harrell(time, event, risk)

    def state(self) -> dict:
        return {"kind": self.kind, "edges": self.edges, "rule": self.rule, "worst_first": self.worst_first}


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
        return RiskClassObjective(state["edges"], worst_first=state.get("worst_first", False),
                                  rule=state.get("rule", "os-edges"))
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
    """How the risk classes are defined.

    ``class_rule``:

    - ``os-severity``: Yao et al. 2025 (Appendix 5), four classes: overall survival below or at
      least ``os_threshold_months`` (36), each split by the expert imaging severity read in
      ``severity_column`` of the clinical table (1 = severe, 0 = milder, blank = unknown);
    - ``os-edges``: hccprog's rule for cohorts without a severity read, K = len(edges) + 1 classes
      of the time to event at ``class_edges_months``
      (:func:`~hccprog.evaluation.classification.risk_class_labels`).

    ``class_order``: ``worst-first`` numbers class 0 the worst (the paper: class 0 = high risk),
    ``worst-last`` the other way round. ``class_column`` (any rule): the classes themselves from a
    column of the clinical table, integers 0 .. K-1 in ``class_order``, blank = unknown."""

    model_config = ConfigDict(extra="forbid")
    class_rule: Literal["os-edges", "os-severity"] = "os-edges"
    class_edges_months: list[float] = Field(default_factory=lambda: [12.0, 24.0, 36.0], min_length=1)
    os_threshold_months: float = Field(36.0, gt=0)
    severity_column: str = "imaging_severity"
    class_order: Literal["worst-last", "worst-first"] = "worst-last"
    class_column: str | None = None

    def classes(self) -> int:
        return 4 if self.class_rule == "os-severity" else len(self.class_edges_months) + 1


def _risk_classes(params: RiskClassParams, unit: str, network: BaseModel) -> RiskClassObjective:
    months = [params.os_threshold_months] if params.class_rule == "os-severity" else params.class_edges_months
    return RiskClassObjective([m * unit_factor("months", unit) for m in months],
                              worst_first=params.class_order == "worst-first", rule=params.class_rule)


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
    ObjectiveKind("classes", RiskClassParams, _risk_classes, network=lambda params: {"classes": params.classes()}),
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
