"""Training in the subspace, quantisation-aware fine-tuning, and the one-call pipeline.

``fit_subspace`` optimises z with Adam on cross-entropy (optionally distilling from a teacher).
``finetune_quantised`` is quantisation-aware training with a straight-through estimator: the
forward pass uses codebook[nearest level of z], the gradient reaches both z and the levels
(Lotfi et al. 2022, Section 4; Bengio et al. 2013 for the estimator).
``compress_subspace_model`` quantises and codes a trained wrapper over a pre-declared grid of
level counts and keeps the count with the best bound (paid for by ln |grid| in the bound).
``train_subspace_model`` runs the whole pipeline for an ordinary model: seeded re-initialisation
(never the trained weights), training, then ``compress_subspace_model``.
"""

import copy
import math

import numpy as np
import torch

from pacbayes import checks
from pacbayes.bounds import compression_bound
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.progress import progress
from pacbayes.subspace.compressed import CompressedSubspaceModel, compress
from pacbayes.models import model_outputs, output_dim, zero_one_error
from pacbayes.subspace.evaluation import EVAL_BATCH, check_labels, data_fingerprint, training_loss
from pacbayes.subspace.model import SubspaceModel
from pacbayes.subspace.projection import _stream_seed
from pacbayes.subspace.quantisation import METHODS, assign, make_levels, to_float16

DEFAULT_LEVELS = (4, 8, 16)
SELECTION_DELTA = 0.05  # only ranks the level counts; the certified delta is the caller's


def _batches(n: int, batch_size: int, epochs: int, seed: int):
    generator = torch.Generator().manual_seed(_stream_seed(seed, "batches"))
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def _optimise(model, x, labels, variables, z_of, *, epochs, lr, batch_size, seed, teacher, distill_weight, quiet, desc):
    if epochs < 0 or batch_size < 1 or not lr > 0:
        raise InputError("epochs must be >= 0, batch_size >= 1 and lr > 0")
    device = model.theta0.device
    model.train()
    optimiser = torch.optim.Adam(variables, lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    for index in progress(_batches(len(x), batch_size, epochs, seed), total=steps, desc=desc, quiet=quiet, unit="step"):
        outputs = model(x[index].to(device), z=z_of())
        soft = None if teacher is None else teacher[index].to(device)
        loss = training_loss(outputs.reshape(len(index), -1), labels[index].to(device), soft, distill_weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def fit_subspace(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    quiet: bool = True,
) -> SubspaceModel:
    """Train z in place with Adam; ``teacher``: (n, K) outputs of a model to distil from."""
    model.set_quantised(None)
    _optimise(
        model,
        x,
        labels,
        [model.z],
        lambda: model.z,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        teacher=teacher,
        distill_weight=distill_weight,
        quiet=quiet,
        desc="subspace training",
    )
    return model


def finetune_quantised(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    codebook,
    *,
    epochs: int = 1,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    quiet: bool = True,
) -> tuple:
    """Quantisation-aware fine-tuning (module docstring); returns (float16 codebook, symbols).

    Updates ``model.z`` in place; the returned symbols are the nearest levels of the final z.
    """
    levels = torch.nn.Parameter(torch.as_tensor(np.asarray(codebook, dtype=np.float32), device=model.theta0.device))

    def straight_through():
        nearest = torch.argmin((model.z.detach()[:, None] - levels.detach()[None, :]).abs(), dim=1)
        return levels[nearest] + model.z - model.z.detach()

    model.set_quantised(None)
    _optimise(
        model,
        x,
        labels,
        [model.z, levels],
        straight_through,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed + 1,
        teacher=teacher,
        distill_weight=distill_weight,
        quiet=quiet,
        desc="quantisation-aware fine-tuning",
    )
    final = np.sort(to_float16(levels.detach().cpu().numpy()))
    return final, assign(model.z.detach().cpu().numpy(), final)


def compress_subspace_model(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    levels=DEFAULT_LEVELS,
    method: str = "kmeans",
    qat_epochs: int = 1,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    extra_configurations: int = 1,
    quiet: bool = True,
) -> CompressedSubspaceModel:
    """Quantise and code a trained :class:`SubspaceModel` (e.g. from your own training loop).

    Every level count in ``levels`` (a grid fixed beforehand) is tried from the same trained z,
    with ``qat_epochs`` of quantisation-aware fine-tuning at learning rate ``lr``; the count with
    the smallest bound is kept. The result records configurations = len(levels) x
    ``extra_configurations`` (pass the number of d / seed / other settings you tried).
    """
    levels = tuple(int(count) for count in levels)
    if not levels or min(levels) < 1 or len(set(levels)) != len(levels):
        raise InputError(f"levels must be distinct integers >= 1, got {levels}")
    if method not in METHODS:
        raise InputError(f"unknown quantisation method {method!r}; choose one of {', '.join(METHODS)}")
    extra_configurations = checks.sample_size(extra_configurations, name="extra_configurations", minimum=1)
    check_labels(output_dim(model, x), labels)
    configurations = len(levels) * int(extra_configurations)
    model.set_quantised(None)
    trained_z = model.z.detach().clone()
    best, best_score = None, math.inf
    for count in levels:
        with torch.no_grad():
            model.z.copy_(trained_z)
        codebook = make_levels(trained_z.cpu().numpy(), count, method)
        if qat_epochs > 0:
            codebook, symbols = finetune_quantised(
                model,
                x,
                labels,
                codebook,
                epochs=qat_epochs,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                teacher=teacher,
                distill_weight=distill_weight,
                quiet=quiet,
            )
        else:
            symbols = assign(trained_z.cpu().numpy(), codebook)
        candidate = compress(
            model,
            codebook,
            symbols,
            configurations=configurations,
            quantisation=method + ("+qat" if qat_epochs > 0 else ""),
        )
        error = zero_one_error(candidate.decode(), x, labels, EVAL_BATCH)
        score = compression_bound(error, candidate.code_bits, len(x), SELECTION_DELTA, configurations)["value"]
        if score < best_score:
            best_score, best = score, (candidate, error, model.z.detach().clone())
    candidate, error, z = best
    with torch.no_grad():
        model.z.copy_(z)
    candidate.train_error, candidate.train_fingerprint = error, data_fingerprint(x, labels)
    candidate.decode()
    return candidate


def train_subspace_model(
    module: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    dim: int,
    seed: int = 0,
    levels=DEFAULT_LEVELS,
    method: str = "kmeans",
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 128,
    qat_epochs: int = 1,
    distill: bool = False,
    distill_weight: float = 0.5,
    extra_configurations: int = 1,
    device=None,
    quiet: bool = True,
) -> CompressedSubspaceModel:
    """Train a compressed subspace model with ``module``'s architecture on (x, labels).

    theta0 is a seeded re-initialisation of the architecture; ``module``'s own (trained) weights
    are used only as a distillation teacher when ``distill=True``. Then
    :func:`compress_subspace_model` (fine-tuning at lr / 5).
    """
    device = resolve_device(device)
    model = SubspaceModel(module, dim=dim, seed=seed).to(device)
    check_labels(output_dim(model, x), labels)
    teacher = None
    if distill:
        teacher = model_outputs(copy.deepcopy(module).to(device), x, EVAL_BATCH).float()
    fit_subspace(
        model,
        x,
        labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        teacher=teacher,
        distill_weight=distill_weight,
        quiet=quiet,
    )
    return compress_subspace_model(
        model,
        x,
        labels,
        levels=levels,
        method=method,
        qat_epochs=qat_epochs,
        lr=lr / 5,
        batch_size=batch_size,
        seed=seed,
        teacher=teacher,
        distill_weight=distill_weight,
        extra_configurations=extra_configurations,
        quiet=quiet,
    )
