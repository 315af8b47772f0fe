"""Evaluating a module at sampled weights (torch.func.functional_call) and scoring its outputs.

Output conventions: a single logit per input (binary; class 1 where the logit is > 0) or K logits
(argmax). Labels are int64 class indices. Error is the 0-1 loss, counted on :func:`forward`'s logits
by :func:`pacbayes.models.count_mistakes`.
"""

import math

import torch
import torch.nn.functional as F
from torch.func import functional_call

from pacbayes.defaults import DEFAULT_SIGMOID_TEMPERATURE  # noqa: F401  (its home; imported from here too)
from pacbayes.errors import InputError

BOUNDED_CE_PMIN = 1e-4
"""p_min of PBB's bounded cross-entropy (Pérez-Ortiz et al. 2021, Section 5)."""


def forward(model: torch.nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` at parameters ``params`` (buffers as stored), shape (n,) or (n, K)."""
    out = functional_call(model, params, (x,))
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() not in (1, 2):
        raise InputError(f"the model must output (n,), (n, 1) or (n, K) logits, got shape {tuple(out.shape)}")
    return out


def _log_prob_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 1:
        signs = 2.0 * labels.to(logits.dtype) - 1.0
        return -F.softplus(-signs * logits)
    return -F.cross_entropy(logits, labels, reduction="none")


def logistic_surrogate(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Dziugaite & Roy's (2017, Section 4) surrogate: logistic / cross-entropy loss divided by ln 2.

    Dividing by ln 2 makes it >= the 0-1 loss (a wrong prediction has p(correct) <= 1/2). Mean over inputs.
    """
    return -_log_prob_correct(logits, labels).mean() / math.log(2.0)


def bounded_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PBB's surrogate in [0, 1]: -ln(max(p, p_min)) / ln(1/p_min) (Pérez-Ortiz et al. 2021, Section 5)."""
    log_pmin = math.log(BOUNDED_CE_PMIN)
    return (_log_prob_correct(logits, labels).clamp(min=log_pmin) / log_pmin).mean()


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-input margin: (2y - 1) f for one logit, f_y - max_{c != y} f_c for K logits (> 0: correct)."""
    if logits.dim() == 1:
        return (2.0 * labels.to(logits.dtype) - 1.0) * logits
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def sigmoid_surrogate(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """A smooth 0-1 loss in (0, 1): mean of sigmoid(-margin / T) (:func:`margins`).

    As T -> 0 it tends to the 0-1 loss, so a bound objective built on it trades the stochastic net's
    error itself against the KL, where the logistic surrogate also charges correct points with small
    margins (a sigmoid loss as in Nguyen & Sanner 2013, direct 0-1 loss optimisation). Training only: the
    certificate always counts the 0-1 loss.
    """
    return torch.sigmoid(-margins(logits, labels) / temperature).mean()


def check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse labels that the model's output cannot represent."""
    classes = 2 if logits.dim() == 1 else logits.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise InputError(
            f"labels must lie in 0..{classes - 1} for a model with "
            f"{'one logit' if classes == 2 and logits.dim() == 1 else f'{classes} logits'}; "
            "binarise the labels or use a matching model"
        )
