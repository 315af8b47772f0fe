"""Training in the subspace, quantisation-aware fine-tuning, and the one-call pipeline.

``fit_subspace`` optimises z with Adam on cross-entropy (optionally distilling from a teacher).
``finetune_quantised`` is quantisation-aware training with a straight-through estimator: the
forward pass uses codebook[nearest level of z], the gradient reaches both z and the levels
(Lotfi et al. 2022, Section 4; Bengio et al. 2013 for the estimator), and the loss adds the
message's length (:func:`code_length_penalty`), so that training trades errors against bits as the
bound does (the rate term of entropy-constrained quantisation; Chou, Lookabaugh & Gray 1989).
``compress_subspace_model`` quantises and codes a trained wrapper over a pre-declared grid of
level counts and fine-tuning epochs and keeps the candidate with the best bound (paid for by
ln |grid| in the bound).
``train_subspace_model`` runs the whole pipeline for an ordinary model: seeded re-initialisation
(never the trained weights), optionally ``learn_origin`` on a held-out part of the data (a
data-dependent prior, :mod:`pacbayes.subspace.origin`), training, then ``compress_subspace_model``.
"""

import copy
import math
import numbers

import numpy as np
import torch

from pacbayes import checks
from pacbayes.bounds import compression_bound
from pacbayes.cache import Phase, cached, like, phase_cache
from pacbayes.defaults import (
    SUBSPACE_EPOCHS as DEFAULT_EPOCHS,
)
from pacbayes.defaults import (
    SUBSPACE_LEVELS as DEFAULT_LEVELS,
)
from pacbayes.defaults import (
    SUBSPACE_MAX_LEVELS as MAX_LEVELS,
)
from pacbayes.defaults import (
    SUBSPACE_PATIENCE as DEFAULT_PATIENCE,
)
from pacbayes.defaults import (
    SUBSPACE_PRIOR_EPOCHS as DEFAULT_PRIOR_EPOCHS,
)
from pacbayes.defaults import (
    SUBSPACE_QAT_EPOCHS as DEFAULT_QAT_EPOCHS,
)
from pacbayes.defaults import (
    SUBSPACE_QAT_PATIENCE as DEFAULT_QAT_PATIENCE,
)
from pacbayes.defaults import (
    SUBSPACE_RATE_WEIGHT as DEFAULT_RATE_WEIGHT,
)
from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.families.settings import SubspaceSettings
from pacbayes.memory import check_fits
from pacbayes.models import model_outputs, output_dim, zero_one_error
from pacbayes.progress import progress
from pacbayes.seeds import stream_generator, stream_seed
from pacbayes.subspace.compressed import CompressedSubspaceModel, compress
from pacbayes.subspace.evaluation import EVAL_BATCH, check_labels, data_fingerprint, training_loss
from pacbayes.subspace.model import SubspaceModel
from pacbayes.subspace.origin import split_indices
from pacbayes.subspace.quantisation import METHODS, assign, make_levels, snap_levels

FINETUNE_LR = SubspaceSettings.lr / 5
"""Adam's learning rate in quantisation-aware fine-tuning: a fifth of subspace training's."""
_QUANTISE_BYTES = 16  # per coordinate and level: two float64 d x L temporaries in quantisation.assign
DEFAULT_PRIOR_LR = 1e-3
SELECTION_DELTA = 0.05  # only ranks the candidates; the certified delta is the caller's
ORIGIN_CODEBOOK = (0.0,)
"""The one-level codebook of z = 0: the candidate "theta0 itself" (a few bits)."""
PHASE_VERSION = 1
"""Version of what the cached phases (learned origin, subspace fit, compression) compute; raise it on a change."""


def _phase(name: str, model: SubspaceModel, settings: dict, inputs: dict, expected: dict) -> Phase:
    """A cacheable phase of training ``model``: its architecture, d, seed and theta0 are inputs too."""
    described = {"model": repr(model.base), "dim": model.dim, "seed": model.seed, "projection": model.projection_kind}
    return Phase(name, PHASE_VERSION, {**described, **settings}, {"theta0": model.theta0, **inputs}, expected)


def _epochs(n: int, batch_size: int, epochs: int, seed: int):
    """Per epoch, the minibatch index tensors of a seeded shuffle."""
    generator = stream_generator(seed, "batches")
    for _ in range(epochs):
        yield torch.randperm(n, generator=generator).split(batch_size)


def code_length_penalty(z: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """A differentiable estimate of the body's length in bits, for quantisation-aware training.

    Each level k costs b_k = -log2((c_k + 1/2) / (d + L/2)) bits, c_k the number of coordinates
    whose nearest level it is (the static form of the KT code, :mod:`pacbayes.subspace.coding`);
    coordinate i pays sum_k q_ik b_k with q_i a softmax of -((z_i - level_k) / (g/2))^2, g the mean
    gap between levels. The costs and g are constants of the step: the gradient moves each z_i
    towards the cheaper of its neighbouring levels, never the levels themselves. 0 for one level.
    """
    if levels.numel() < 2:
        return z.sum() * 0.0
    fixed = levels.detach()
    nearest = torch.argmin((z.detach()[:, None] - fixed[None, :]).abs(), dim=1)
    counts = torch.bincount(nearest, minlength=fixed.numel()).to(torch.float64)
    costs = -torch.log2((counts + 0.5) / (z.numel() + fixed.numel() / 2)).to(z.dtype)
    width = (fixed[-1] - fixed[0]).clamp_min(1e-12) / (fixed.numel() - 1) / 2
    soft = torch.softmax(-(((z[:, None] - fixed[None, :]) / width) ** 2), dim=1)
    return (soft * costs[None, :]).sum()


def _taught(x, labels, teacher, distill_weight: float, settings: dict) -> dict:
    """The data inputs of a cached training phase (and, with a teacher, its outputs; its weight goes into
    ``settings``)."""
    if teacher is None:
        return {"x": x, "labels": labels}
    settings["distill_weight"] = float(distill_weight)
    return {"x": x, "labels": labels, "teacher": teacher}


def _optimise(
    model,
    x,
    labels,
    variables,
    z_of,
    *,
    epochs,
    lr,
    batch_size,
    seed,
    teacher,
    distill_weight,
    patience,
    quiet,
    desc,
    penalty=None,
    on_epoch=None,
) -> int:
    """Adam on ``variables`` for at most ``epochs`` epochs; returns the number of epochs run.

    ``penalty``: a function of no arguments added to every minibatch's loss; ``on_epoch``: called
    (no arguments) after every epoch.
    With ``patience`` (convergence mode) training stops once the epoch's mean training loss has not
    improved on the best by a relative 1e-4 for ``patience`` epochs, and the variables are put back
    at the best epoch's values. Everything here is a function of S, which the posterior may be.
    """
    if epochs < 0 or batch_size < 1 or not lr > 0 or (patience is not None and patience < 1):
        raise InputError("epochs must be >= 0, batch_size >= 1, lr > 0 and patience >= 1 (or None)")
    device = model.theta0.device
    optimiser = torch.optim.Adam(variables, lr=lr)
    best, best_state, stale, run = math.inf, None, 0, 0
    steps = epochs * math.ceil(len(x) / batch_size)
    bar = progress(total=steps, desc=desc, quiet=quiet, unit="step")
    for batches in _epochs(len(x), batch_size, epochs, seed):
        model.train()  # on_epoch may have evaluated the model
        total = 0.0
        for index in batches:
            outputs = model(x[index].to(device), z=z_of())
            soft = None if teacher is None else teacher[index].to(device)
            loss = training_loss(outputs.reshape(len(index), -1), labels[index].to(device), soft, distill_weight)
            if penalty is not None:
                loss = loss + penalty()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            bar.update(1)
        run += 1
        if on_epoch is not None:
            on_epoch()
        if patience is None:
            continue
        epoch_loss = total / len(x)
        if epoch_loss < best * (1.0 - 1e-4):
            best, stale = epoch_loss, 0
            best_state = [v.detach().clone() for v in variables]
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()
    if best_state is not None:
        with torch.no_grad():
            for variable, value in zip(variables, best_state, strict=True):
                variable.copy_(value)
    return run


def fit_subspace(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = SubspaceSettings.lr,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    patience: int | None = DEFAULT_PATIENCE,
    quiet: bool = True,
    cache=None,
) -> SubspaceModel:
    """Train z in place with Adam for at most ``epochs`` epochs, to convergence with ``patience``
    (None: exactly ``epochs``); ``teacher``: (n, K) outputs of a model to distil from. The epochs run
    are recorded as ``model.epochs_run``. ``cache``: a :class:`pacbayes.cache.PhaseCache` that may hold
    the result for these inputs (None: none)."""
    model.set_quantised(None)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "fit_seed": seed, "patience": patience}
    inputs = {"z": model.z, **_taught(x, labels, teacher, distill_weight, settings)}

    def fit() -> dict:
        run = _optimise(
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
            patience=patience,
            quiet=quiet,
            desc="subspace training",
        )
        return {"z": model.z.detach(), "epochs_run": torch.tensor(run)}

    phase = _phase("subspace-fit", model, settings, inputs, {"z": like(model.z), "epochs_run": ((), np.int64)})
    result = cached(cache, phase, fit)
    with torch.no_grad():
        model.z.copy_(result["z"])
    model.epochs_run = int(result["epochs_run"])
    return model


def learn_origin(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    split: float,
    epochs: int = DEFAULT_PRIOR_EPOCHS,
    lr: float = DEFAULT_PRIOR_LR,
    batch_size: int = 64,
    quiet: bool = True,
    cache=None,
) -> tuple:
    """Train theta0 on the prior part of (x, labels) and return the bound part (x_bound, labels_bound).

    The seeded permutation of :func:`pacbayes.subspace.origin.split_indices` (from the model's seed)
    puts round(split m) points in the prior part; every parameter of theta0 is trained on them with
    Adam for ``epochs`` epochs from the seeded start, with z held at 0, and the model's origin
    records the split and the prior part's fingerprint (the bound re-derives the split and checks
    it). Nothing here sees the bound part. ``cache``: as in :func:`fit_subspace`.
    """
    epochs = checks.sample_size(epochs, name="prior epochs", minimum=1)
    prior, rest = split_indices(len(labels), split, model.seed)
    model.set_quantised(None)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    phase = _phase(
        "subspace-origin", model, settings, {"x": x[prior], "labels": labels[prior]}, {"theta0": like(model.theta0)}
    )
    theta0 = cached(
        cache, phase, lambda: {"theta0": _trained_origin(model, x[prior], labels[prior], epochs, lr, batch_size, quiet)}
    )["theta0"]
    model.set_origin(
        theta0,
        {
            "kind": "data-dependent",
            "prior_split": float(split),
            "prior_points": len(prior),
            "bound_points": len(rest),
            "prior_fingerprint": data_fingerprint(x[prior], labels[prior]),
            "epochs": int(epochs),
            "lr": float(lr),
        },
    )
    return x[rest], labels[rest]


def _trained_origin(model: SubspaceModel, x, labels, epochs: int, lr: float, batch_size: int, quiet: bool):
    """theta0 trained by Adam on (x, labels) with z held at 0 (:func:`learn_origin`)."""
    theta0 = model.theta0.detach().clone().requires_grad_(True)
    zero = torch.zeros(model.dim, device=theta0.device)
    model.theta0 = theta0
    try:
        _optimise(
            model,
            x,
            labels,
            [theta0],
            lambda: zero,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=stream_seed(model.seed, "origin"),
            teacher=None,
            distill_weight=0.0,
            patience=None,
            quiet=quiet,
            desc="subspace origin",
        )
    finally:
        model.theta0 = theta0.detach()
    return model.theta0


def finetune_quantised(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    codebook,
    *,
    epochs: int = DEFAULT_QAT_EPOCHS,
    patience: int | None = DEFAULT_QAT_PATIENCE,
    rate_weight: float = DEFAULT_RATE_WEIGHT,
    lr: float = FINETUNE_LR,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    on_epoch=None,
    quiet: bool = True,
) -> tuple:
    """Quantisation-aware fine-tuning (module docstring); returns (snapped codebook, symbols).

    ``on_epoch(codebook, symbols)``, if given, sees every epoch's snapped codebook and the nearest
    levels of that epoch's z (:func:`compress_subspace_model` scores each one and keeps the best).

    At most ``epochs`` epochs, to convergence with ``patience`` (None: all of them), minimising the
    mean cross-entropy + ``rate_weight`` ln 2 / m x :func:`code_length_penalty` (0: none; 1 prices
    the message's nats, as the KL pays them, like nats of the summed cross-entropy). Updates
    ``model.z`` in place; the returned symbols are the nearest levels of the final z.
    """
    if not rate_weight >= 0:
        raise InputError(f"rate_weight must be >= 0, got {rate_weight}")
    levels = torch.nn.Parameter(torch.as_tensor(np.asarray(codebook, dtype=np.float32), device=model.theta0.device))

    def straight_through():
        nearest = torch.argmin((model.z.detach()[:, None] - levels.detach()[None, :]).abs(), dim=1)
        return levels[nearest] + model.z - model.z.detach()

    def rate():
        return rate_weight * math.log(2.0) / len(x) * code_length_penalty(model.z, levels)

    def quantised():
        codebook = snap_levels(levels.detach().cpu().numpy())
        return codebook, assign(model.z.detach().cpu().numpy(), codebook)

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
        patience=patience,
        quiet=quiet,
        desc="quantisation-aware fine-tuning",
        penalty=rate if rate_weight > 0 else None,
        on_epoch=None if on_epoch is None else lambda: on_epoch(*quantised()),
    )
    return quantised()


def level_grid(levels, dim: int) -> tuple:
    """``levels`` as distinct whole numbers in 1..:data:`MAX_LEVELS` (InputError otherwise, or when
    quantising ``dim`` coordinates to the largest would not fit in memory): checked before any training."""
    try:
        values = () if isinstance(levels, (str, bytes)) else tuple(levels)
    except TypeError:  # one number, None
        values = ()
    if not values or any(
        isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v != int(v) for v in values
    ):
        raise InputError(f"levels (--subspace-levels) must be whole numbers, got {levels!r}")
    counts = tuple(int(v) for v in values)
    if min(counts) < 1 or max(counts) > MAX_LEVELS or len(set(counts)) != len(counts):
        raise InputError(f"levels (--subspace-levels) must be distinct whole numbers in 1..{MAX_LEVELS}, got {counts}")
    dim = checks.sample_size(dim, "the subspace dimension d", minimum=1)
    check_fits(
        _QUANTISE_BYTES * dim * max(counts),
        torch.device("cpu"),
        f"quantising d = {dim} coordinates to {max(counts)} levels",
        "try fewer levels or a smaller d",
    )
    return counts


def compress_subspace_model(
    model: SubspaceModel,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    levels=DEFAULT_LEVELS,
    method: str = "kmeans",
    qat_epochs: int = DEFAULT_QAT_EPOCHS,
    qat_patience: int | None = DEFAULT_QAT_PATIENCE,
    rate_weight: float = DEFAULT_RATE_WEIGHT,
    lr: float = FINETUNE_LR,
    batch_size: int = 128,
    seed: int = 0,
    teacher=None,
    distill_weight: float = 0.5,
    extra_configurations: int = 1,
    include_origin: bool = False,
    quiet: bool = True,
    cache=None,
) -> CompressedSubspaceModel:
    """Quantise and code a trained :class:`SubspaceModel` (e.g. from your own training loop).

    Every level count in ``levels`` (a grid fixed beforehand) is tried from the same trained z,
    with at most ``qat_epochs`` of quantisation-aware fine-tuning (:func:`finetune_quantised`, to
    convergence with ``qat_patience``, code length weighted by ``rate_weight``) at learning rate
    ``lr``. Every (level count, fine-tuning epoch) pair is a candidate, scored by its bound on
    (x, labels); the best is kept. So the result records configurations = (len(levels) x
    max(qat_epochs, 1) + include_origin) x ``extra_configurations`` (pass the number of d / seed /
    other settings you tried): the union bound pays for the choice (ln 150 = 5.0 nats for the
    default grid). ``include_origin`` adds the candidate z = 0 (theta0 itself, coded in 8 bits):
    worth it when theta0 was learned (:func:`learn_origin`). ``cache``: as in :func:`fit_subspace`.
    """
    levels = level_grid(levels, model.dim)
    if method not in METHODS:
        raise InputError(f"unknown quantisation method {method!r}; choose one of {', '.join(METHODS)}")
    extra_configurations = checks.sample_size(extra_configurations, name="extra_configurations", minimum=1)
    check_labels(output_dim(model, x), labels)
    configurations = (len(levels) * max(int(qat_epochs), 1) + bool(include_origin)) * int(extra_configurations)
    quantisation = method + ("+qat" if qat_epochs > 0 else "")
    model.set_quantised(None)
    grid = {"levels": list(levels), "method": method, "qat_epochs": qat_epochs, "qat_patience": qat_patience}
    settings = {**grid, "rate_weight": rate_weight, "lr": lr, "batch_size": batch_size, "fit_seed": seed}
    settings["include_origin"] = bool(include_origin)
    inputs = {"z": model.z, **_taught(x, labels, teacher, distill_weight, settings)}
    expected = {
        "z": like(model.z),
        "codebook": ((None,), np.float64),
        "symbols": ((model.dim,), np.int64),
        "error": ((), np.float64),
        "origin": ((), np.bool_),
    }

    def search() -> dict:
        return _best_candidate(
            model,
            x,
            labels,
            levels=levels,
            method=method,
            include_origin=include_origin,
            score=lambda error, bits: compression_bound(error, bits, len(x), SELECTION_DELTA, configurations)["value"],
            finetune=dict(
                epochs=qat_epochs,
                patience=qat_patience,
                rate_weight=rate_weight,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                teacher=teacher,
                distill_weight=distill_weight,
                quiet=quiet,
            ),
        )

    best = cached(cache, _phase("subspace-compress", model, settings, inputs, expected), search)
    kind = "origin" if bool(best["origin"]) else quantisation
    candidate = compress(
        model, best["codebook"].numpy(), best["symbols"].numpy(), configurations=configurations, quantisation=kind
    )
    with torch.no_grad():
        model.z.copy_(best["z"])
    candidate.train_error, candidate.train_fingerprint = float(best["error"]), data_fingerprint(x, labels)
    candidate.decode()
    return candidate


def _best_candidate(model: SubspaceModel, x, labels, *, levels, method, include_origin, score, finetune) -> dict:
    """The search of :func:`compress_subspace_model`: every candidate scored by ``score(error, bits)``; the
    best as z, codebook (float64), symbols, its error on (x, labels) and whether it is the origin (z = 0).
    ``finetune``: the keyword arguments of :func:`finetune_quantised` (0 epochs: none)."""
    trained_z = model.z.detach().clone()
    best = {"score": math.inf}

    def consider(codebook, symbols, origin=False):
        candidate = compress(model, codebook, symbols)
        error = zero_one_error(candidate.decode(), x, labels, EVAL_BATCH)
        model.set_quantised(None)
        value = score(error, candidate.code_bits)
        if value < best["score"]:
            z = torch.zeros_like(model.z) if origin else model.z.detach().clone()
            symbols = torch.as_tensor(np.asarray(symbols, dtype=np.int64))
            codebook = torch.as_tensor(np.asarray(codebook, dtype=np.float64))
            best.update(
                score=value, z=z, codebook=codebook, symbols=symbols, error=torch.tensor(error, dtype=torch.float64)
            )
            best["origin"] = torch.tensor(origin)

    if include_origin:
        consider(np.asarray(ORIGIN_CODEBOOK, dtype=np.float32), np.zeros(model.dim, dtype=np.int64), True)
    for count in levels:
        with torch.no_grad():
            model.z.copy_(trained_z)
        codebook = make_levels(trained_z.cpu().numpy(), count, method)
        if finetune["epochs"] > 0:
            finetune_quantised(model, x, labels, codebook, on_epoch=consider, **finetune)
        else:
            consider(codebook, assign(trained_z.cpu().numpy(), codebook))
    del best["score"]
    return best


def train_subspace_model(
    module: torch.nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    settings: SubspaceSettings,
    *,
    seed: int = 0,
    method: str = "kmeans",
    batch_size: int = 128,
    distill_weight: float = 0.5,
    prior_lr: float = DEFAULT_PRIOR_LR,
    device=None,
    quiet: bool = True,
    cache_dir=None,
) -> CompressedSubspaceModel:
    """Train a compressed subspace model with ``module``'s architecture on (x, labels).

    settings: the family's :class:`~pacbayes.families.settings.SubspaceSettings` (its defaults are the
    defaults here); ``dim`` is required, ``compressed`` must be None (this trains one), and
    ``attempts_ledger`` is the family's (it counts the attempt before training), not read here.
    theta0 is a seeded (``seed``) re-initialisation of the architecture; ``module``'s own (trained)
    weights are used only as a distillation teacher when ``distill`` (weighted by ``distill_weight``).
    With ``prior_split`` > 0, theta0 is then trained on that fraction of the points
    (:func:`learn_origin`, ``prior_epochs`` at ``prior_lr``) and everything after sees only the rest,
    the bound part; z = 0 (theta0 itself) becomes a candidate. z is trained by :func:`fit_subspace` (to
    convergence with ``patience``, at most ``epochs``; 0 patience: all of them), then
    :func:`compress_subspace_model` (quantised by ``method``, fine-tuning at lr / 5, ``qat_patience``
    0: every epoch). The settings and the epochs run are recorded in the result's ``training``.
    ``cache_dir``: a folder where the learned origin, the fit and the chosen candidate are kept, keyed
    by their exact inputs (:mod:`pacbayes.cache`): a rerun reads them back and gives the same model;
    None: no cache.
    """
    if not isinstance(settings, SubspaceSettings):
        raise InputError(
            "settings must be a pacbayes.families.settings.SubspaceSettings, e.g. SubspaceSettings(dim=500), "
            f"got {type(settings).__name__}"
        )
    if settings.compressed is not None:
        raise InputError(
            "settings.compressed is already a compressed model; train_subspace_model trains a new one: "
            "leave compressed None (or certify the compressed model with subspace_bound)"
        )
    if settings.dim is None:
        raise InputError("settings.dim is None; give the subspace dimension, e.g. SubspaceSettings(dim=500)")
    dim, epochs, lr, prior_split = settings.dim, settings.epochs, settings.lr, settings.prior_split
    patience, qat_patience = settings.patience or None, settings.qat_patience or None
    levels, distill = level_grid(settings.levels, dim), settings.distill
    device = resolve_device(device)
    model = SubspaceModel(module, dim=dim, seed=seed).to(device)
    check_labels(output_dim(model, x), labels)
    cache = phase_cache(cache_dir)
    if prior_split:
        x, labels = learn_origin(
            model, x, labels, split=prior_split, epochs=settings.prior_epochs, lr=prior_lr, quiet=quiet, cache=cache
        )
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
        patience=patience,
        quiet=quiet,
        cache=cache,
    )
    compressed = compress_subspace_model(
        model,
        x,
        labels,
        levels=levels,
        method=method,
        qat_epochs=settings.qat_epochs,
        qat_patience=qat_patience,
        rate_weight=settings.rate_weight,
        lr=lr / 5,
        batch_size=batch_size,
        seed=seed,
        teacher=teacher,
        distill_weight=distill_weight,
        extra_configurations=settings.extra_configurations,
        include_origin=bool(prior_split),
        quiet=quiet,
        cache=cache,
    )
    compressed.training = {
        "epochs": epochs,
        "patience": patience,
        "epochs_run": model.epochs_run,
        "lr": lr,
        "qat_epochs": settings.qat_epochs,
        "qat_patience": qat_patience,
        "rate_weight": settings.rate_weight,
        "levels_grid": list(levels),
        "distill": distill,
        "prior_split": float(prior_split),
    }
    return compressed
