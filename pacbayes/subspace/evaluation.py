"""Label checks, training losses and data fingerprints for subspace training of a model with one
logit (binary) or K logits; its outputs and 0-1 error come from :mod:`pacbayes.models`."""

import torch
from torch.nn import functional as F

from pacbayes.errors import InputError
from pacbayes.hashing import bytes_sha256

EVAL_BATCH = 2048
"""Inputs per forward pass when a subspace model is evaluated."""


def check_labels(outputs: int, labels: torch.Tensor) -> None:
    """Labels must be int64 classes in 0..K-1 (0/1 for a single-logit model)."""
    if labels.dtype != torch.int64 or labels.dim() != 1:
        raise InputError("labels must be a 1-D int64 tensor of class indices")
    classes = 2 if outputs == 1 else outputs
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise InputError(
            f"labels must lie in 0..{classes - 1} for a model with {outputs} output(s); "
            "binarise the data for a single-logit model"
        )


def training_loss(
    outputs: torch.Tensor, labels: torch.Tensor, teacher=None, distill_weight: float = 0.5
) -> torch.Tensor:
    """Cross-entropy (logistic for one logit), mixed with distillation towards ``teacher`` outputs.

    Distillation (Hinton et al. 2015) matches the teacher's predictive distribution; the mix is
    (1 - w) * CE(labels) + w * CE(teacher probabilities).
    """
    single = outputs.shape[-1] == 1
    logits = outputs.reshape(-1) if single else outputs
    if single:
        loss = F.binary_cross_entropy_with_logits(logits, labels.float())
    else:
        loss = F.cross_entropy(logits, labels)
    if teacher is None:
        return loss
    if single:
        soft = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher.reshape(-1)))
    else:
        soft = -(F.softmax(teacher, dim=-1) * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return (1.0 - distill_weight) * loss + distill_weight * soft


def data_fingerprint(x: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of the data's bytes: tells the decoding check whether it sees the encoder's data."""
    inputs = x.detach().cpu().contiguous().float().numpy().tobytes()
    return bytes_sha256(inputs, labels.detach().cpu().contiguous().numpy().tobytes())
