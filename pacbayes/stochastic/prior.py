"""The prior mean w0 of P = N(w0, lambda I): initial weights from a checkpoint or a seed, or zero.

Nothing in a data-independent prior may depend on the sample S (docs/certificates.md); a prior centred at the
trained weights is therefore refused. A data-dependent prior (PBB) is learned in
:mod:`pacbayes.stochastic.train` on a held-out part of S and handled by the caller.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pacbayes.errors import InputError
from pacbayes.models import check_state_tensors, load_state_dict_file, reinitialise

_SAME_AS_TRAINED = 1e-6
"""Relative distance ||w - w0|| / ||w|| under which w0 counts as the trained weights."""


@dataclass(frozen=True)
class Prior:
    """Prior mean (parameter name -> tensor), its kind and a sentence saying where it came from."""

    mean: dict
    kind: str
    description: str


def parameters_of(model: torch.nn.Module) -> dict:
    """The module's trainable parameters, detached, by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _load_state(init_state: str | Path | Mapping) -> Mapping:
    """The init state dict: a mapping as given, or read from a weights-only file (a damaged zip, a pickle, a
    program archive, complex, meta or sparse entries are refused)."""
    if isinstance(init_state, Mapping):
        return check_state_tensors(init_state, "the init checkpoint")
    path = Path(init_state)
    if not path.exists():
        raise InputError(f"init checkpoint {str(path)!r} does not exist; pass the file saved at initialisation")
    return load_state_dict_file(path, f"init checkpoint {str(path)!r}")


def _matching(state: Mapping, trained: dict, source: str) -> dict:
    mean = {}
    for name, w in trained.items():
        if name not in state:
            raise InputError(f"{source} has no entry {name!r}; it must be a state dict of the same architecture")
        w0 = torch.as_tensor(state[name])
        if tuple(w0.shape) != tuple(w.shape):
            raise InputError(f"{source} entry {name!r} has shape {tuple(w0.shape)}, the model's is {tuple(w.shape)}")
        if not torch.isfinite(w0).all():
            raise InputError(f"{source} entry {name!r} has non-finite values")
        mean[name] = w0.to(dtype=w.dtype, device=w.device)
    return mean


def reinitialised(model: torch.nn.Module, seed: int) -> dict:
    """Parameters of a copy of ``model`` re-initialised under torch.manual_seed(seed), by name.

    :func:`pacbayes.models.reinitialise` (every ``reset_parameters``, in ``model.modules()`` order,
    under a forked RNG: the global torch seed is left as it was). This equals the original
    initialisation when the model was built as ``torch.manual_seed(seed); model = Net()`` with
    default layer initialisers. A layer with parameters but no ``reset_parameters`` is refused.
    """
    clone = reinitialise(
        model,
        seed,
        remedy="--init-seed cannot re-create the initialisation: pass the init checkpoint instead (--init INIT.pt)",
    )
    device = next(model.parameters()).device
    return {name: p.detach().to(device) for name, p in clone.named_parameters()}


def _check_not_trained(mean: dict, trained: dict, source: str) -> None:
    num = sum(float(((trained[n].double() - w0.double()) ** 2).sum()) for n, w0 in mean.items())
    den = sum(float((w.double() ** 2).sum()) for w in trained.values())
    if num <= (_SAME_AS_TRAINED**2) * den:
        raise InputError(
            f"{source} equals the trained weights: a prior centred there depends on the training "
            "data and the bound would be invalid; pass the weights saved before training, or use "
            "a data-dependent prior (prior_split > 0)"
        )


def data_independent_prior(model: torch.nn.Module, init_state=None, init_seed: int | None = None) -> Prior:
    """The prior mean from an init checkpoint, a re-created seeded init, or zero (the labelled fallback)."""
    trained = parameters_of(model)
    if init_state is not None and init_seed is not None:
        raise InputError("give either an init checkpoint or an init seed, not both")
    if init_state is not None:
        source = "the init checkpoint" if isinstance(init_state, Mapping) else f"init checkpoint {str(init_state)!r}"
        mean = _matching(_load_state(init_state), trained, source)
        _check_not_trained(mean, trained, source)
        return Prior(mean, "init-checkpoint", f"N(w0, lambda I), w0 = weights read from {source}")
    if init_seed is not None:
        mean = reinitialised(model, init_seed)
        _check_not_trained(mean, trained, f"the initialisation from seed {init_seed}")
        return Prior(
            mean,
            "init-seed",
            f"N(w0, lambda I), w0 = the architecture re-initialised with torch.manual_seed({int(init_seed)})",
        )
    zeros = {name: torch.zeros_like(w) for name, w in trained.items()}
    return Prior(zeros, "zero", "N(0, lambda I), zero-centred (no init given: valid but usually looser)")
