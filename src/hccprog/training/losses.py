"""Survival losses as plain functions."""

from __future__ import annotations

import warnings

import torch


def cox_loss(log_hz: torch.Tensor, event: torch.Tensor, time: torch.Tensor, *, ties: str = "efron") -> torch.Tensor:
    """Negative Cox partial log-likelihood (torchsurv; Efron ties by default) divided by the
    number of events, so that its scale does not depend on the batch size or on ties.

    A batch without events carries no partial-likelihood information: the loss is 0 (still
    attached to the graph, so ``backward`` works) instead of NaN.
    """
    from torchsurv.loss.cox import neg_partial_log_likelihood

    event = event.bool()
    if int(event.sum()) == 0 or log_hz.numel() < 2:
        return log_hz.sum() * 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ties in `time` detected")
        total = neg_partial_log_likelihood(log_hz.view(-1), event.view(-1), time.view(-1).to(log_hz.dtype),
                                           ties_method=ties, reduction="sum")
    return total / event.sum()
