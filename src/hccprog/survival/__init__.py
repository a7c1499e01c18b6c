"""The survival layer: the estimators every layer above shares, below ``training``, ``baselines``,
``models`` and ``reports``.

- :mod:`~hccprog.survival.estimators`: the in-house Kaplan-Meier, Harrell's C, input checks;
- :mod:`~hccprog.survival.preprocess`: tabular preprocessing fitted on training rows;
- :mod:`~hccprog.survival.cox`: penalised Cox, Cox scores and the bivariate Cox fusion (RadCLN);
- :mod:`~hccprog.survival.breslow`: Breslow survival from a risk score;
- :mod:`~hccprog.survival.cv`: patient-level folds, the minimum cohort size, fold predictions;
- :mod:`~hccprog.survival.endpoints`: labels derived from an endpoint (event by a horizon).
"""
