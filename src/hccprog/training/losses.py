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


def interval_index(time: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """Index of the interval ``(cuts[j-1], cuts[j]]`` holding each time (``cuts[-1] = 0``); times
    beyond the last cut get ``len(cuts)`` (they outlive every interval)."""
    return torch.searchsorted(cuts.to(time.dtype), time, right=False)


def logistic_hazard_loss(logits: torch.Tensor, event: torch.Tensor, time: torch.Tensor,
                         cuts: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of a discrete-time survival model with logistic hazards, averaged
    over patients (Gensheimer and Narasimhan 2019; pycox's ``nll_logistic_hazard``).

    ``logits`` (N, J): the conditional probability of the event in interval j given survival to
    its start is ``sigmoid(logits[:, j])``; intervals end at ``cuts`` (J increasing times). A
    patient with an event in interval j contributes ``log(1 - h_0) + ... + log(1 - h_{j-1}) +
    log h_j``; one censored in interval j survived the intervals before j and, as in pycox, counts as
    surviving interval j too; a time beyond the last cut survived every interval.
    """
    n, j = logits.shape
    idx = interval_index(time.to(torch.float64), cuts.to(time.device, torch.float64))  # cuts follow a GPU batch
    ev = event.bool() & (idx < j)
    last = idx.clamp(max=j - 1)
    target = torch.zeros_like(logits)
    target[ev, last[ev]] = 1.0
    steps = torch.arange(j, device=logits.device)
    at_risk = (steps[None, :] <= last[:, None]).to(logits.dtype)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * at_risk).sum() / max(n, 1)


def discrete_survival(logits: torch.Tensor) -> torch.Tensor:
    """(N, J) survival probabilities at the ends of the intervals: prod_{k<=j} (1 - h_k)."""
    return torch.cumprod(torch.sigmoid(-logits), dim=1)
