"""Radiomics and delta-radiomics: the comparators of the published networks, on the same inputs.

DLOP_Combin (Sun et al. 2024) is compared with a radiomics LASSO-Cox signature; ProgSwin-UNETR
(Yao et al. 2025) with radiomics classifiers (naive Bayes, random forest, SVM, decision tree,
XGBoost). Features come from ``preprocessing.features`` (PyRadiomics; tumor, liver and a
peritumoral ring per time point and series); the delta variants add the change from the baseline
to the first follow-up (difference and relative change).

Everything is fitted inside each training fold (``RadiomicsPipeline.fit``):

1. columns missing for more than ``max_missing`` of the training patients are dropped, the rest
   imputed by the training median;
2. near-zero variance: columns with (almost) no spread or fewer than 3 distinct values go;
3. stability: a tumor feature whose ICC(1,1) over the original, eroded and dilated tumor masks
   (one voxel) is below ``icc_min`` goes;
4. univariate screening: a Cox score test (survival) or Welch's t test (response) on the
   standardised columns; p < ``screen_p`` (at least the ``min_features`` strongest are kept);
5. correlation clustering: average-linkage clusters of 1 - |r| cut at 1 - ``corr_max``; the
   strongest column of each cluster, at most ``max_features``;
6. the learner: LASSO-Cox (lifelines, penalty by inner CV on Harrell's C) or gradient-boosted Cox
   (XGBoost ``survival:cox``) for survival; L1 logistic regression, naive Bayes, random forest,
   SVM, decision tree or XGBoost for the response. The risk is the log-hazard, or the logit
   (decision value) of PD.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from hccprog.errors import InputError
from hccprog.models.registry import ModelSpec
from hccprog.preprocessing.features import FeatureConfig
from hccprog.reports.nomogram import clinical_terms
from hccprog.survival.cox import CoxModel, CoxScore
from hccprog.survival.cv import inner_splits

Learner = Literal["lasso", "xgb", "logistic", "nb", "rf", "svm", "dt"]
CLASSIFIERS = ("logistic", "nb", "rf", "svm", "dt")


class RadiomicsModelConfig(BaseModel):
    """The feature reduction and the learner of a radiomics model."""

    model_config = ConfigDict(extra="forbid")
    learner: Learner = "lasso"
    delta: bool = False  # add follow-up minus baseline and the relative change
    max_missing: float = Field(0.2, ge=0, le=1)
    icc_min: float = Field(0.75, ge=0, le=1)  # 0: no stability filter
    screen_p: float = Field(0.05, gt=0, le=1)
    min_features: int = Field(3, ge=1)
    corr_max: float = Field(0.9, gt=0, le=1)
    max_features: int = Field(20, ge=1)
    penalizers: list[float] = Field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2])  # LASSO-Cox grid
    inner_folds: int = Field(3, ge=2)
    trees: int = Field(300, ge=1)  # XGBoost and random forest
    depth: int = Field(2, ge=1)  # XGBoost (the decision tree: depth + 1)
    learning_rate: float = Field(0.03, gt=0)
    # the training patients' scores that the fusion and the risk-group cut-offs are learned from: the
    # fitted model's own (in-sample, the RadCLN recipe) or out of fold over ``inner_folds`` inner folds
    # (a flexible learner's in-sample scores are optimistic)
    train_risk: Literal["in-sample", "inner-cv"] = "in-sample"


# ------------------------------------------------------------------ reduction steps (pure functions)


def icc_1_1(ratings: np.ndarray) -> np.ndarray:
    """ICC(1,1) (one-way random, single rater) per column: ``ratings`` (k raters, n subjects, p)."""
    r = np.asarray(ratings, float)
    k, n = r.shape[0], r.shape[1]
    subj = r.mean(axis=0)  # (n, p)
    grand = subj.mean(axis=0)
    msb = k * ((subj - grand) ** 2).sum(axis=0) / max(n - 1, 1)
    msw = ((r - subj) ** 2).sum(axis=(0, 1)) / max(n * (k - 1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (msb - msw) / (msb + (k - 1) * msw)


def cox_score_z(x: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """The univariable Cox score-test statistic (at beta = 0, Breslow ties) of every column of
    ``x`` (n, p): z = U / sqrt(I), U = sum over events of (x_i - risk-set mean), I = sum over
    events of the risk-set variance."""
    x = np.asarray(x, float)
    order = np.argsort(-np.asarray(time, float), kind="stable")  # descending: cumulative sums = risk sets
    t, e, xs = np.asarray(time, float)[order], np.asarray(event, int)[order], x[order]
    n_at = np.arange(1, len(t) + 1)[:, None]
    s1, s2 = np.cumsum(xs, axis=0), np.cumsum(xs ** 2, axis=0)
    # a tie shares the risk set of its last member (in descending order)
    last = np.searchsorted(-t, -t, side="right") - 1
    m1, m2 = s1[last] / n_at[last], s2[last] / n_at[last]
    ev = e.astype(bool)
    u = (xs[ev] - m1[ev]).sum(axis=0)
    info = (m2[ev] - m1[ev] ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return u / np.sqrt(info)


def welch_t(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Welch's t of every column of ``x`` between y == 1 and y == 0 (positive: higher in y == 1)."""
    a, b = x[y == 1], x[y == 0]
    va, vb = a.var(axis=0, ddof=1) / max(len(a), 1), b.var(axis=0, ddof=1) / max(len(b), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(va + vb)


def cluster_representatives(x: np.ndarray, strength: np.ndarray, corr_max: float, limit: int) -> list[int]:
    """Average-linkage clusters of 1 - |r|, cut at 1 - ``corr_max``; the column of highest
    ``strength`` of each cluster, strongest clusters first, at most ``limit``."""
    p = x.shape[1]
    if p == 1:
        return [0]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    r = np.nan_to_num(np.corrcoef(x, rowvar=False), nan=0.0)
    dist = np.clip(1 - np.abs(r), 0, None)
    np.fill_diagonal(dist, 0)
    labels = fcluster(linkage(squareform(dist, checks=False), method="average"), t=1 - corr_max, criterion="distance")
    best = {}
    for j in np.argsort(-strength, kind="stable"):
        best.setdefault(labels[j], int(j))
    return sorted(best.values(), key=lambda j: -strength[j])[:limit]


# ------------------------------------------------------------------ the pipeline


class RadiomicsPipeline:
    """Feature reduction and learner, fitted on the training part of a split."""

    def __init__(self, cfg: RadiomicsModelConfig, task: str, *, seed: int = 0) -> None:
        """``task``: ``survival`` (time, event), ``response`` (event = 1 for PD) or ``classes`` (event =
        the ordered risk class 0..K-1, -1 unknown and left out of the fit)."""
        if task == "survival" and cfg.learner in CLASSIFIERS:
            raise ValueError(f"radiomics learner '{cfg.learner}' classifies: use it with --endpoint response, or "
                             "on a survival endpoint as a risk-class model")
        self.cfg, self.task, self.seed = cfg, task, seed
        self.saved_: dict | None = None  # set by ``from_state``: the saved learner scores
        self.train_risk_: pd.Series | None = None  # inner-CV scores of the training patients, when asked

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray, *,
            perturbed: list[pd.DataFrame] | None = None) -> RadiomicsPipeline:
        """``X``: training patients x features; ``event`` is the label for the response and class
        tasks; ``perturbed``: the same patients' features from the eroded and dilated tumor masks."""
        cfg = self.cfg
        if self.task == "classes":  # patients of unknown class inform nothing here
            known = np.asarray(event, int) >= 0
            X, time, event = X[known], np.asarray(time)[known], np.asarray(event)[known]
            perturbed = [q.reindex(index=X.index) for q in perturbed] if perturbed else perturbed
        steps = {"extracted": X.shape[1]}
        keep = X.columns[X.isna().mean() <= cfg.max_missing]
        X = X[keep]
        self.medians_ = X.median()
        Xf = X.fillna(self.medians_)
        sd = Xf.std(ddof=0)
        nz = (sd > 1e-8 * np.maximum(1.0, Xf.mean().abs())) & (Xf.nunique() >= 3)
        Xf = Xf.loc[:, nz]
        steps["after missing and near-zero variance"] = Xf.shape[1]
        if perturbed and cfg.icc_min > 0:
            cols = [c for c in Xf.columns if all(c in p.columns for p in perturbed)]
            if cols:
                ratings = np.stack([Xf[cols].to_numpy()] + [p.reindex(index=Xf.index)[cols].fillna(self.medians_[cols])
                                                            .to_numpy() for p in perturbed])
                icc = icc_1_1(ratings)
                unstable = [c for c, v in zip(cols, icc, strict=True) if not (np.isfinite(v) and v >= cfg.icc_min)]
                Xf = Xf.drop(columns=unstable)
        steps["after stability (ICC)"] = Xf.shape[1]
        if Xf.shape[1] == 0:
            raise InputError("radiomics: no feature is left after the missing-value, variance and stability filters "
                             "(too few patients, or features that do not vary between them)",
                             hint="lower the stability threshold (icc_min) or use a larger cohort")
        self.mean_, self.sd_ = Xf.mean(), Xf.std(ddof=0)
        Z = ((Xf - self.mean_) / self.sd_).to_numpy()
        from scipy import stats

        if self.task == "classes":  # one-way ANOVA F across the classes
            from sklearn.feature_selection import f_classif

            with np.errstate(divide="ignore", invalid="ignore"):
                stat, p = f_classif(np.nan_to_num(Z), np.asarray(event, int))
            p = np.nan_to_num(p, nan=1.0)
        else:
            stat = cox_score_z(Z, time, event) if self.task == "survival" else welch_t(Z, np.asarray(event, int))
            p = 2 * stats.norm.sf(np.abs(np.nan_to_num(stat, nan=0.0)))
        strength = np.abs(np.nan_to_num(stat, nan=0.0))
        passed = np.flatnonzero(p < cfg.screen_p)
        if len(passed) < cfg.min_features:
            passed = np.argsort(-strength, kind="stable")[: cfg.min_features]
        steps["after univariate screening"] = len(passed)
        reps = cluster_representatives(Z[:, passed], strength[passed], cfg.corr_max, cfg.max_features)
        self.selected_ = [str(Xf.columns[passed[j]]) for j in reps]
        steps["after correlation clustering"] = len(self.selected_)
        self.steps_ = steps
        Zs = self.standardize(X)
        self._fit_learner(Zs, np.asarray(time, float), np.asarray(event, int))
        self.train_risk_ = None
        if cfg.train_risk == "inner-cv" and self.task != "classes":
            self.train_risk_ = self._inner_cv_risk(X, np.asarray(time, float), np.asarray(event, int), perturbed)
        return self

    def _inner_cv_risk(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray, perturbed) -> pd.Series:
        """Out-of-fold scores of the training patients: the whole pipeline refitted on each inner
        training part."""

        inner = self.cfg.model_copy(update={"train_risk": "in-sample"})
        out = pd.Series(np.nan, index=X.index)
        for tr, te in inner_splits(len(X), event, self.cfg.inner_folds, self.seed):
            pipe = RadiomicsPipeline(inner, self.task, seed=self.seed).fit(
                X.iloc[tr], time[tr], event[tr], perturbed=[q.iloc[tr] for q in perturbed] if perturbed else None)
            out.iloc[te] = pipe.predict_risk(X.iloc[te])
        return out

    def standardize(self, X: pd.DataFrame) -> pd.DataFrame:
        """The selected features, missing values at the training median, z-scored on the training patients."""
        cols = self.selected_
        return (X.reindex(columns=cols).fillna(self.medians_[cols]) - self.mean_[cols]) / self.sd_[cols]

    def _fit_learner(self, Z: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> None:
        cfg, seed = self.cfg, self.seed
        kind = cfg.learner
        if self.task == "survival":
            if kind == "lasso":

                self.model_ = CoxModel(penalizers=tuple(cfg.penalizers), l1_ratio=1.0, inner_folds=cfg.inner_folds,
                                       seed=seed).fit(Z, time, event)
            else:  # xgb
                import xgboost as xgb

                label = np.where(event == 1, time, -time)  # XGBoost's convention: negative = censored
                self.model_ = xgb.train({"objective": "survival:cox", "eta": cfg.learning_rate,
                                         "max_depth": cfg.depth, "subsample": 0.8, "colsample_bytree": 0.8,
                                         "min_child_weight": 2, "seed": seed, "nthread": 1, "verbosity": 0},
                                        xgb.DMatrix(Z.to_numpy(), label=label), num_boost_round=cfg.trees)
            return
        # the classes seen in training, encoded 0..m-1 (XGBoost needs contiguous labels)
        self.classes_ = np.unique(event)
        y = np.searchsorted(self.classes_, event)
        counts = np.bincount(y)
        self.model_ = _classifier(kind, cfg, seed, int(counts.min()), probability=self.task == "classes")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_.fit(Z.to_numpy(), y)

    def probabilities(self, X: pd.DataFrame, classes: int) -> np.ndarray:
        """Risk-class probabilities (n, ``classes``) of the classes task; a class that no training
        patient had gets 0."""
        out = np.zeros((len(X), classes))
        out[:, self.classes_.astype(int)] = self.model_.predict_proba(self.standardize(X).to_numpy())
        return out

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Log-hazard (survival), logit of PD (response) or the expected risk class (classes), higher
        = worse."""
        Z = self.standardize(X)
        if self.task == "classes":
            return self.model_.predict_proba(Z.to_numpy()) @ self.classes_.astype(float)
        if self.saved_ is not None:
            return _saved_risk(self.saved_, Z)
        if self.task == "survival":
            if self.cfg.learner == "lasso":
                return self.model_.predict_risk(Z)
            import xgboost as xgb

            return np.log(np.clip(self.model_.predict(xgb.DMatrix(Z.to_numpy())), 1e-12, None))
        m = self.model_
        if hasattr(m, "decision_function"):
            return np.asarray(m.decision_function(Z.to_numpy()), float)
        p = np.clip(m.predict_proba(Z.to_numpy())[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per patient, each selected feature's additive part of :meth:`predict_risk` and the ``baseline``
        (a saved pipeline, as ``predict`` and ``explain`` load it)."""
        if self.saved_ is None:
            return saved_contributions(self.state(), self.standardize(X))
        return saved_contributions(self.saved_, self.standardize(X))

    @property
    def saveable(self) -> bool:
        """Whether ``state`` can describe the fitted learner as plain JSON (every learner but the
        scikit-learn naive Bayes, random forest, SVM and decision tree, which only pickle would)."""
        return self.task != "classes" and self.cfg.learner in ("lasso", "xgb", "logistic")

    def state(self) -> dict:
        """The fitted pipeline as plain JSON (``from_state`` scores new patients with it)."""
        cols = self.selected_
        out = {"task": self.task, "learner": self.cfg.learner, "selected": cols,
               "median": [float(self.medians_[c]) for c in cols], "mean": [float(self.mean_[c]) for c in cols],
               "sd": [float(self.sd_[c]) for c in cols], "steps": self.steps_}
        m = self.model_
        if self.task == "survival" and self.cfg.learner == "lasso":
            out["cox"] = m.state()
        elif self.cfg.learner == "xgb":
            booster = m if self.task == "survival" else m.get_booster()
            out["booster"] = bytes(booster.save_raw(raw_format="json")).decode("utf-8")
        elif self.cfg.learner in ("lasso", "logistic"):
            out["coef"] = [float(v) for v in np.ravel(m.coef_)]
            out["intercept"] = float(np.ravel(m.intercept_)[0])
        else:
            raise ValueError(f"radiomics learner '{self.cfg.learner}' cannot be saved as JSON")
        return out

    @classmethod
    def from_state(cls, state: dict, *, config: RadiomicsModelConfig | None = None) -> RadiomicsPipeline:
        """The pipeline that :meth:`state` describes, scoring as the fitted one did. ``config``: the
        model's configuration (by default the defaults with the saved learner)."""
        cfg = config if config is not None else RadiomicsModelConfig(learner=state["learner"])
        pipe = cls(cfg, state["task"])
        cols = list(state["selected"])
        pipe.selected_ = cols
        pipe.medians_ = pd.Series(state["median"], index=cols, dtype=float)
        pipe.mean_ = pd.Series(state["mean"], index=cols, dtype=float)
        pipe.sd_ = pd.Series(state["sd"], index=cols, dtype=float)
        pipe.steps_ = dict(state.get("steps", {}))
        pipe.saved_ = state
        return pipe


def saved_contributions(state: dict, Z: pd.DataFrame) -> pd.DataFrame:
    """Per patient and selected feature, its additive part of the risk of a saved pipeline (``state``),
    plus ``baseline`` (the rest): coefficient x standardised value for LASSO-Cox and logistic models,
    TreeSHAP values (XGBoost's ``pred_contribs``) for boosted trees. Rows sum to the risk."""
    cols = list(Z.columns)
    if "cox" in state:

        terms, offset = clinical_terms(state["cox"])
        parts = pd.DataFrame(0.0, index=Z.index, columns=cols)
        for t in terms:
            parts[t.name] = [t.contribution(v) for v in Z[t.name]]
        return parts.assign(baseline=offset)
    if "booster" in state:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(state["booster"].encode("utf-8")))
        shap = booster.predict(xgb.DMatrix(Z.to_numpy()), pred_contribs=True)
        return pd.DataFrame(np.asarray(shap, float), index=Z.index, columns=[*cols, "baseline"])
    coef = np.asarray(state["coef"], float)
    return pd.DataFrame(Z.to_numpy() * coef, index=Z.index, columns=cols).assign(baseline=float(state["intercept"]))


def _saved_risk(state: dict, Z: pd.DataFrame) -> np.ndarray:
    """The risk of a pipeline rebuilt from its ``state``."""
    if "cox" in state:

        return CoxScore.from_state(state["cox"]).predict_risk(Z)
    if "booster" in state:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(state["booster"].encode("utf-8")))
        margin = booster.predict(xgb.DMatrix(Z.to_numpy()), output_margin=True)
        return np.asarray(margin, float)  # survival:cox: the log hazard ratio; classifier: the logit
    return Z.to_numpy() @ np.asarray(state["coef"], float) + float(state["intercept"])


def _classifier(kind: str, cfg: RadiomicsModelConfig, seed: int, smaller_class: int, *, probability: bool = False):
    if kind in ("lasso", "logistic"):
        from sklearn.linear_model import LogisticRegressionCV

        # more than two classes (ProgSwin's risk classes): one-vs-rest AUC, the binary AUC otherwise
        return LogisticRegressionCV(Cs=10, cv=max(2, min(cfg.inner_folds, smaller_class)),
                                    scoring="roc_auc_ovr" if probability else "roc_auc",
                                    l1_ratios=(1.0,) if kind == "lasso" else (0.0,),
                                    solver="liblinear" if kind == "lasso" else "lbfgs", max_iter=5000,
                                    use_legacy_attributes=False, random_state=seed)
    if kind == "nb":
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB()
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=cfg.trees, min_samples_leaf=3, random_state=seed, n_jobs=1)
    if kind == "svm":
        from sklearn.svm import SVC

        return SVC(kernel="rbf", C=1.0, gamma="scale", probability=probability, random_state=seed)
    if kind == "dt":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=cfg.depth + 1, min_samples_leaf=5, random_state=seed)
    import xgboost as xgb  # xgb

    return xgb.XGBClassifier(n_estimators=cfg.trees, max_depth=cfg.depth, learning_rate=cfg.learning_rate,
                             subsample=0.8, colsample_bytree=0.8, random_state=seed, n_jobs=1, verbosity=0)


def build(cfg: RadiomicsModelConfig, *, task: str = "survival", seed: int = 0) -> RadiomicsPipeline:
    """The model of a ``features``-input spec (the registry's ``build``)."""
    return RadiomicsPipeline(cfg, task, seed=seed)


def _preset(features: FeatureConfig, network: dict, cv_repeats: int = 1) -> dict:
    return {"preprocessing": features.model_dump(mode="json"), "network": network,
            "cv": {"folds": 5, "repeats": cv_repeats, "seed": 0}}


#: ``hccprog train`` settings: cpu (a 4 mm grid, the original image), paper (1 mm, with LoG and
#: wavelet filters, as radiomics studies of HCC do), tiny (tests), post-tace (cpu on the first post-TACE
#: scan's features, as ProgSwin-UNETR's radiomics comparators read them).
PRESETS = {
    "cpu": _preset(FeatureConfig(), {}),
    "paper": _preset(FeatureConfig(resample_mm=1.0, filters=["original", "log", "wavelet"],
                                     log_sigma_mm=[1.0, 2.0, 3.0, 4.0, 5.0]), {}),
    "tiny": _preset(FeatureConfig(resample_mm=6.0, regions=["tumor", "liver"]),
                    {"penalizers": [0.1], "trees": 30}),
    # the radiomics comparators of ProgSwin-UNETR (Yao et al. 2025, Appendix 4): features of the first
    # post-TACE scan (the paper's arterial-phase MRI: preprocessing.series selects it)
    "post-tace": _preset(FeatureConfig(read_timepoint=1), {}),
}


def _specs() -> list[ModelSpec]:
    survival = {"cox": ("lasso", "LASSO-Cox (penalty by inner CV); on the response, L1 logistic regression"),
                "xgb": ("xgb", "gradient-boosted Cox (XGBoost survival:cox); on the response, XGBoost")}
    out = []
    for delta in (False, True):
        for suffix, (learner, what) in survival.items():
            name = f"{'delta-' if delta else ''}radiomics-{suffix}"
            inputs = ("baseline features and their change to the first follow-up" if delta
                      else "baseline features")
            out.append(ModelSpec(name, f"Radiomics ({inputs}: tumor, liver, peritumoral ring; PyRadiomics), {what}",
                                 RadiomicsModelConfig, build,
                                 # a boosted learner's in-sample scores overfit: its fusion and cut-offs are
                                 # learned from inner-CV scores (docs/models/radiomics.md, tuning round 1)
                                 defaults={"learner": learner, "delta": delta,
                                           "train_risk": "inner-cv" if learner == "xgb" else "in-sample"},
                                 input="features", presets=PRESETS, reads_followups=lambda cfg: cfg.delta))
    classifiers = {"logistic": ("logistic", "L2 logistic regression"), "nb": ("nb", "Gaussian naive Bayes"),
                   "rf": ("rf", "random forest"), "svm": ("svm", "SVM (RBF kernel)"), "dt": ("dt", "decision tree"),
                   "xgb-classifier": ("xgb", "XGBoost classifier")}
    for suffix, (learner, what) in classifiers.items():
        out.append(ModelSpec(f"radiomics-{suffix}", f"Radiomics classifier (ProgSwin-UNETR's comparators): {what} "
                             "on baseline features; ordered risk classes on a survival endpoint, PD on the response",
                             RadiomicsModelConfig, build, defaults={"learner": learner, "delta": False},
                             objective="classes", input="features", presets=PRESETS,
                             reads_followups=lambda cfg: cfg.delta))
    return out


#: The names ``hccprog train --model`` gives this module (collected by :mod:`hccprog.models.registry`).
SPECS = _specs()
