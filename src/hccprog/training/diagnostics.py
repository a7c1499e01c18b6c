"""Diagnostics for a network that does not learn, as practitioners run them.

Each function takes a network builder (or a built network), an objective of
:mod:`hccprog.training.objectives` and preprocessed arrays, and measures one thing:

- :func:`input_statistics`: what the network reads, per channel, after preprocessing;
- :func:`loss_at_initialisation`: the loss of the untrained network beside the loss of a constant
  output (a head whose initial outputs are far from constant starts far from the optimum);
- :func:`branch_gradient_norms`: the gradient norm of each branch (top-level module, or deeper), so
  that a branch that gets no gradient (a detached path, a selection without a gradient) shows;
- :func:`overfit`: full-batch training on a few patients; a network that cannot drive the loss
  towards zero on 16 patients has a defect, not a ceiling;
- :func:`lr_range_test`: the loss as the learning rate grows exponentially step by step (Smith 2017),
  and the rate of its steepest descent;
- :func:`class_balance`: the class counts and the weights that balance them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hccprog.training.deep import recompute_batchnorm as _recompute


def _forward(model: nn.Module, x: np.ndarray | torch.Tensor, clin: np.ndarray | None) -> torch.Tensor:
    xb = torch.as_tensor(np.asarray(x, np.float32)) if not isinstance(x, torch.Tensor) else x.float()
    if clin is None:
        return model(xb)
    return model(xb, torch.as_tensor(np.asarray(clin, np.float32)))


def _loss(objective, out: torch.Tensor, time_: np.ndarray, event: np.ndarray, labels: np.ndarray | None):
    extra = {} if labels is None else {"labels": np.asarray(labels)}
    return objective.loss(out, torch.as_tensor(np.asarray(event).astype(int)),
                          torch.as_tensor(np.asarray(time_, float)), **extra)


def channel_axis(x: np.ndarray) -> int:
    """The channel axis of hccprog's tensors: (N, T, S, K, C, H, W) slices, (N, T, C, D, H, W)
    volumes."""
    if x.ndim == 7:
        return 4
    if x.ndim == 6:
        return 2
    raise ValueError(f"expected slice (7-D) or volume (6-D) tensors, got shape {x.shape}")


def input_statistics(x: np.ndarray) -> list[dict]:
    """Per input channel (and stream, for slices): mean, SD, minimum, maximum and the share of
    exact zeros (masked-out voxels), over patients, time points and pixels.

    Parameters
    ----------
    x : numpy.ndarray
        Preprocessed tensors, (N, T, S, K, C, H, W) or (N, T, C, D, H, W).

    Returns
    -------
    list of dict
        One row per channel: ``stream`` (slices only), ``channel``, ``mean``, ``sd``, ``min``,
        ``max``, ``zero_fraction``.
    """
    x = np.asarray(x)
    axis = channel_axis(x)
    rows = []
    streams = x.shape[2] if x.ndim == 7 else 1
    for s in range(streams):
        for c in range(x.shape[axis]):
            v = (x[:, :, s, :, c] if x.ndim == 7 else x[:, :, c]).astype(np.float64)
            row = {"channel": c, "mean": float(v.mean()), "sd": float(v.std()), "min": float(v.min()),
                   "max": float(v.max()), "zero_fraction": float((v == 0).mean())}
            rows.append(({"stream": s} if x.ndim == 7 else {}) | row)
    return rows


def loss_at_initialisation(model: nn.Module, objective, x: np.ndarray, time_: np.ndarray, event: np.ndarray, *,
                           clin: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
    """The untrained network's loss (evaluation mode) beside the loss of a constant output.

    A constant output is the natural start: the Cox loss of equal log-hazards, the cross-entropy
    of uniform class probabilities (log K). ``ratio`` far above 1 means the head's initial outputs
    are large and varied: the first steps undo the initialisation instead of learning.
    """
    model.eval()
    with torch.no_grad():
        out = _forward(model, x, clin)
        initial = float(_loss(objective, out, time_, event, labels))
        constant = float(_loss(objective, torch.zeros_like(out), time_, event, labels))
    return {"initial_loss": initial, "constant_output_loss": constant,
            "ratio": initial / constant if constant else float("nan"), "output_sd": _spread(out)}


def branch_gradient_norms(model: nn.Module, objective, x: np.ndarray, time_: np.ndarray, event: np.ndarray, *,
                          clin: np.ndarray | None = None, labels: np.ndarray | None = None,
                          depth: int = 1) -> dict[str, float]:
    """L2 norm of the loss gradient per branch after one training-mode forward and backward pass.

    Parameters
    ----------
    depth : int
        Module-name depth that makes a branch: 1 groups parameters by top-level module
        (``encoder.*``, ``head.*``), 2 by the next level. ``total`` is the whole network's norm.

    Returns
    -------
    dict
        Branch name -> gradient norm; a branch with parameters but no gradient reads 0.0.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(objective, _forward(model, x, clin), time_, event, labels).backward()
    sums: dict[str, float] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        branch = ".".join(name.split(".")[:depth])
        g = 0.0 if p.grad is None else float(p.grad.detach().double().pow(2).sum())
        sums[branch] = sums.get(branch, 0.0) + g
    out = {k: float(np.sqrt(v)) for k, v in sums.items()}
    out["total"] = float(np.sqrt(sum(sums.values())))
    model.zero_grad(set_to_none=True)
    return out


def recompute_batchnorm(model: nn.Module, x: np.ndarray | torch.Tensor, clin: np.ndarray | None = None) -> bool:
    """Batch-norm running statistics of the current weights on ``x`` (one training-mode pass without
    gradients, :func:`hccprog.training.deep.recompute_batchnorm`); False when the network has no
    batch norm."""
    return _recompute(model, lambda: _forward(model, x, clin))


def _spread(out: torch.Tensor) -> float:
    """The SD of the outputs over patients (averaged over output columns)."""
    return float(out.float().std(dim=0).mean() if out.ndim > 1 else out.float().std())


def _evaluate(model: nn.Module, objective, xb, time_, event, clin, labels) -> dict:
    model.eval()
    with torch.no_grad():
        out = _forward(model, xb, clin)
        loss = float(_loss(objective, out, time_, event, labels))
    risk = objective.predict_risk(out.double().numpy())
    metrics = objective.validation(np.asarray(time_, float), np.asarray(event).astype(int), risk)
    res = {"eval_loss": loss, "eval_output_sd": _spread(out),
           "eval_validation": {k: float(v) for k, v in metrics.items()}}
    if labels is not None and out.ndim == 2:  # class heads: in-sample accuracy and the classes predicted
        y = np.asarray(labels).astype(int)
        pred = out.argmax(dim=1).numpy()
        res["eval_accuracy"] = float((pred[y >= 0] == y[y >= 0]).mean())
        res["eval_predicted_counts"] = np.bincount(pred, minlength=out.shape[1]).tolist()
    return res


def overfit(build: Callable[[], nn.Module], objective, x: np.ndarray, time_: np.ndarray, event: np.ndarray, *,
            clin: np.ndarray | None = None, labels: np.ndarray | None = None, steps: int = 200,
            lr: float = 1e-3, seed: int = 0) -> dict:
    """Full-batch Adam on the given patients (no augmentation, no weight decay).

    Returns
    -------
    dict
        ``losses`` per step (training mode), ``first``, ``last``, ``min``; ``eval_loss``: the loss
        of the final weights in evaluation mode, batch-norm statistics recomputed for those weights
        (:func:`recompute_batchnorm`; the evaluation with the running statistics as training left
        them is ``running_statistics``: a gap between the two is stale statistics, a gap to
        ``last`` that remains is dropout or a train/eval path difference); ``eval_output_sd``: the spread of the
        evaluation outputs over patients (near 0: one output for everyone); ``eval_validation``: the
        objective's validation metrics of the evaluation outputs on the same patients (``val_c``
        for survival heads), which a network that memorised them ranks nearly perfectly; with
        ``labels`` and class outputs, ``eval_accuracy`` and ``eval_predicted_counts`` as well.
    """
    torch.manual_seed(seed)
    model = build()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    xb = torch.as_tensor(np.asarray(x, np.float32))
    losses = []
    for _ in range(steps):
        model.train()
        loss = _loss(objective, _forward(model, xb, clin), time_, event, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    stale = _evaluate(model, objective, xb, time_, event, clin, labels)
    res = {"losses": losses, "first": losses[0], "last": losses[-1], "min": float(min(losses)), "steps": steps,
           "lr": lr, "patients": len(x)}
    if recompute_batchnorm(model, xb, clin):  # the running statistics lag weights that change this fast
        res["running_statistics"] = stale
        return res | _evaluate(model, objective, xb, time_, event, clin, labels)
    return res | stale


def lr_range_test(build: Callable[[], nn.Module], objective, x: np.ndarray, time_: np.ndarray, event: np.ndarray,
                  *, clin: np.ndarray | None = None, labels: np.ndarray | None = None, lr_min: float = 1e-6,
                  lr_max: float = 1.0, steps: int = 60, batch_size: int = 16, seed: int = 0,
                  smoothing: float = 0.8) -> dict:
    """Smith's learning-rate range test: one Adam step per learning rate, the rate multiplied by a
    constant factor from ``lr_min`` to ``lr_max``; stops when the smoothed loss exceeds four
    times its minimum.

    Returns
    -------
    dict
        ``lrs`` and ``losses`` (exponentially smoothed, bias-corrected), ``steepest_lr`` (where the
        smoothed loss falls fastest) and ``min_loss_lr``.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min}, {lr_max}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr_min)
    factor = (lr_max / lr_min) ** (1 / max(1, steps - 1))
    lrs, losses, avg, best = [], [], 0.0, np.inf
    lr = lr_min
    for step in range(steps):
        idx = rng.choice(len(x), size=min(batch_size, len(x)), replace=False)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        loss = _loss(objective, _forward(model, x[idx], None if clin is None else clin[idx]), time_[idx],
                     event[idx], None if labels is None else labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        avg = smoothing * avg + (1 - smoothing) * float(loss.detach())
        smoothed = avg / (1 - smoothing ** (step + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if not np.isfinite(smoothed) or smoothed > 4 * best:
            break
        lr *= factor
    arr = np.asarray(losses)
    slope = np.gradient(arr, np.log(lrs)) if len(arr) > 2 else np.zeros_like(arr)
    return {"lrs": lrs, "losses": losses, "steepest_lr": float(lrs[int(np.argmin(slope))]),
            "min_loss_lr": float(lrs[int(np.argmin(arr))])}


def class_balance(labels: np.ndarray, classes: int) -> dict:
    """Counts of the known classes (``-1`` unknown) and the inverse-frequency weights that balance
    a cross-entropy (mean weight 1 over the patients; a class without patients gets 0)."""
    y = np.asarray(labels).astype(int)
    known = y[y >= 0]
    counts = np.bincount(known, minlength=classes)[:classes]
    weights = np.where(counts > 0, len(known) / (classes * np.maximum(counts, 1)), 0.0)
    return {"counts": counts.tolist(), "unknown": int((y < 0).sum()),
            "majority_share": float(counts.max() / max(1, counts.sum())), "weights": weights.round(4).tolist()}
