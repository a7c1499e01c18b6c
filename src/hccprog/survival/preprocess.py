"""Tabular preprocessing fitted on training folds only: imputation, encoding, scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd


class TabularPreprocessor:
    """Median (numeric, ordinal) or mode (categorical) imputation, one-hot encoding with the most
    frequent level as reference, standardisation, and removal of columns constant in training.

    ``fit`` sees the training patients only; ``transform`` applies what it learned.

    Parameters
    ----------
    scale : bool
        Standardise the columns (mean 0, SD 1 on the training patients).

    Examples
    --------
    >>> import pandas as pd
    >>> train = pd.DataFrame({"age": [60, 70, None, 50], "sex": ["M", "F", "M", "M"]})
    >>> prep = TabularPreprocessor().fit(train)
    >>> prep.feature_names
    ['age', 'sex=F']
    >>> prep.transform(train)["age"].round(3).tolist()
    [0.0, 1.414, 0.0, -1.414]
    """

    def __init__(self, *, scale: bool = True, scaling: str = "standard", one_hot: bool = False) -> None:
        if scaling not in ("standard", "minmax"):
            raise ValueError(f"scaling must be 'standard' or 'minmax', got {scaling!r}")
        self.scale = scale
        self.scaling = scaling  # standard: (x - mean) / SD; minmax: (x - min) / (max - min), [0, 1] on training
        self.one_hot = one_hot  # one column per level (the reference level included), not k - 1 dummies

    def fit(self, frame: pd.DataFrame) -> TabularPreprocessor:
        self.columns_ = list(frame.columns)
        self.kinds_: dict[str, str] = {}
        self.fill_: dict[str, str | float] = {}
        self.levels_: dict[str, list] = {}
        for c in self.columns_:
            col = frame[c]
            if isinstance(col.dtype, pd.CategoricalDtype) or col.dtype == object:
                self.kinds_[c] = "categorical"
                counts = col.dropna().astype(str).value_counts()
                mode = counts.index[0] if len(counts) else "missing"
                self.fill_[c] = mode
                # reference = most frequent level; dummies for the others (one-hot: for every level)
                self.levels_[c] = [lv for lv in sorted(counts.index) if lv != mode or self.one_hot]
            else:
                self.kinds_[c] = "numeric"
                values = pd.to_numeric(col, errors="coerce").dropna()
                # no value in these rows: a constant 0, dropped below as constant (median() would warn)
                self.fill_[c] = float(values.median()) if len(values) else 0.0
        raw = self._encode(frame)
        std = raw.std(ddof=0)
        self.keep_ = [c for c in raw.columns if std[c] > 1e-12]
        # the centre and the scale of each kept column (minmax: the training minimum and range)
        if self.scaling == "minmax":
            self.mean_ = raw[self.keep_].min()
            self.std_ = raw[self.keep_].max() - self.mean_
        else:
            self.mean_ = raw[self.keep_].mean()
            self.std_ = std[self.keep_]
        return self

    def _encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = {}
        for c in self.columns_:
            if self.kinds_[c] == "categorical":
                col = frame[c].astype(object).where(frame[c].notna(), None)
                col = col.map(lambda v, c=c: self.fill_[c] if v is None else str(v))
                if self.one_hot:  # a level training never saw reads as the most frequent one, as without one-hot
                    known = set(self.levels_[c])
                    col = col.map(lambda v, c=c, known=known: v if v in known else self.fill_[c])
                for lv in self.levels_[c]:
                    parts[f"{c}={lv}"] = (col == lv).astype(float)
            else:
                parts[c] = pd.to_numeric(frame[c], errors="coerce").fillna(self.fill_[c]).astype(float)
        return pd.DataFrame(parts, index=frame.index)

    def unseen_levels(self, frame: pd.DataFrame) -> dict[str, dict[str, str]]:
        """Per categorical column, the rows (index -> value) whose level training never saw: they are
        encoded as the reference (most frequent training) level, which the caller must say."""
        out: dict[str, dict[str, str]] = {}
        for c in self.columns_:
            if self.kinds_[c] != "categorical" or c not in frame:
                continue
            known = {*map(str, self.levels_[c]), str(self.fill_[c])}
            col = frame[c]
            hits = {str(i): str(v) for i, v in col[col.notna()].items() if str(v) not in known}
            if hits:
                out[c] = hits
        return out

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        raw = self._encode(frame)[self.keep_]
        if self.scale:
            raw = (raw - self.mean_) / self.std_
        return raw

    def fit_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.fit(frame).transform(frame)

    @property
    def feature_names(self) -> list[str]:
        return list(self.keep_)

    def state(self) -> dict:
        """The fitted state as plain JSON (``from_state`` rebuilds the preprocessor)."""
        return {"columns": self.columns_, "kinds": self.kinds_,
                "fill": {k: (v if isinstance(v, str) else float(v)) for k, v in self.fill_.items()},
                "levels": self.levels_, "keep": self.keep_, "mean": self.mean_.to_dict(), "std": self.std_.to_dict(),
                "scale": self.scale, "scaling": self.scaling, "one_hot": self.one_hot}

    @classmethod
    def from_state(cls, state: dict) -> TabularPreprocessor:
        p = cls(scale=state.get("scale", True), scaling=state.get("scaling", "standard"),
                one_hot=bool(state.get("one_hot", False)))
        p.columns_, p.kinds_, p.fill_, p.levels_ = state["columns"], state["kinds"], state["fill"], state["levels"]
        p.keep_ = list(state["keep"])
        p.mean_ = pd.Series(state["mean"], dtype=float).reindex(p.keep_)
        p.std_ = pd.Series(state["std"], dtype=float).reindex(p.keep_)
        return p

    def unscaled(self, name: str, z: np.ndarray) -> np.ndarray:
        """Map scaled values of feature ``name`` back to its encoded scale."""
        return np.asarray(z) * self.std_[name] + self.mean_[name]
