"""A wrapper that trains any nn.Module in a random subspace: theta = theta0 + P z.

theta0 is a seeded re-initialisation of the module's architecture (every submodule's
``reset_parameters`` run under a private RNG seeded from ``seed``, by
:func:`pacbayes.models.reinitialise`), never the weights it arrives with: the prior of the
compression bound must not depend on the points the bound is computed on
(docs/certificates.md#prior-fixed-before-s). :meth:`SubspaceModel.set_origin` replaces it by a
theta0 learned on a held-out part of the data (:mod:`pacbayes.subspace.origin`).
P is a seeded structured projection (:mod:`pacbayes.subspace.projection`); only z (d numbers) is
trained. Li et al. (2018), "Measuring the Intrinsic Dimension of Objective Landscapes", ICLR,
Section 2; Lotfi et al. (2022), NeurIPS, Section 4.

Use it in your own loop like any module: ``model = SubspaceModel(net, dim=500, seed=0)``, then an
optimiser over ``model.parameters()`` (that is ``[model.z]``) and ``model(x)`` for outputs.
"""

import numpy as np
import torch
from torch import nn

from pacbayes import checks
from pacbayes.errors import InputError
from pacbayes.models import reinitialise as reinitialise_module
from pacbayes.seeds import stream_seed
from pacbayes.subspace.origin import SEEDED
from pacbayes.subspace.projection import make_projection


def reinitialise(module: nn.Module, seed: int) -> nn.Module:
    """theta0: a float32 copy of ``module`` re-drawn by :func:`pacbayes.models.reinitialise`
    (every layer's ``reset_parameters``) under the "theta0" stream of ``seed``, parameters frozen.

    Reproducible, and leaves the caller's RNG untouched. Refuses modules with buffers (e.g.
    BatchNorm running statistics: they would be fitted to the data outside the subspace) and
    parameters no layer can re-initialise.
    """
    buffers = [name for name, _ in module.named_buffers()]
    if buffers:
        raise InputError(
            f"the model has buffers ({', '.join(buffers[:3])}) that subspace training "
            "cannot code; use a model without BatchNorm running statistics"
        )
    module = reinitialise_module(
        module,
        stream_seed(seed, "theta0"),
        dtype=torch.float32,
        remedy="give them a reset_parameters() so that theta0 can be drawn from the seed",
    )
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class SubspaceModel(nn.Module):
    """theta = theta0 + P z around a seeded re-initialisation of ``module`` (module docstring).

    ``dim``: subspace dimension d; ``seed``: fixes theta0 and P; ``projection``: "kronecker".
    After :meth:`set_quantised` the forward pass uses the quantised z (codebook[symbols]).
    ``origin`` describes theta0 (:mod:`pacbayes.subspace.origin`): seeded unless :meth:`set_origin`.
    """

    def __init__(self, module: nn.Module, dim: int, seed: int, projection: str = "kronecker"):
        super().__init__()
        self.dim = checks.sample_size(dim, name="subspace dimension", minimum=1)
        self.seed = checks.sample_size(seed, name="seed", minimum=0)
        self.projection_kind = projection
        self.base = reinitialise(module, self.seed)
        named = list(self.base.named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.register_buffer("theta0", torch.cat([p.detach().reshape(-1) for _, p in named]))
        self.projection = make_projection(projection, self.theta0.numel(), self.dim, self.seed)
        self.z = nn.Parameter(torch.zeros(self.dim))
        self.quantised_z = None
        self.origin = dict(SEEDED)

    @property
    def n_params(self) -> int:
        return self.theta0.numel()

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.projection.to(self.theta0.device)
        return self

    def parameters(self, recurse: bool = True):
        """Only z is trainable (the base module's weights are fixed buffers of the prior)."""
        yield self.z

    def theta(self, z: torch.Tensor = None) -> torch.Tensor:
        """The flat parameter vector theta0 + P z (z defaults to the model's current z)."""
        if z is None:
            z = self.z if self.quantised_z is None else self.quantised_z
        return self.theta0 + self.projection(z)

    def forward(self, x: torch.Tensor, z: torch.Tensor = None) -> torch.Tensor:
        flat = self.theta(z)
        params, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=False):
            size = int(np.prod(shape, dtype=np.int64))
            params[name] = flat[offset : offset + size].view(shape)
            offset += size
        return torch.func.functional_call(self.base, params, (x,))

    def set_origin(self, theta0: torch.Tensor, origin: dict) -> None:
        """Move the subspace to start at ``theta0`` (length D), described by ``origin``."""
        theta0 = torch.as_tensor(theta0, dtype=self.theta0.dtype, device=self.theta0.device).detach()
        if theta0.shape != self.theta0.shape or not bool(torch.isfinite(theta0).all()):
            raise InputError(f"theta0 must be {self.n_params} finite numbers, got shape {tuple(theta0.shape)}")
        self.theta0 = theta0.clone()
        self.origin = dict(origin)

    def set_quantised(self, values) -> None:
        """Evaluate with z fixed to ``values`` (a float tensor of length d) from now on; None clears."""
        if values is None:
            self.quantised_z = None
            return
        values = torch.as_tensor(values, dtype=torch.float32, device=self.theta0.device)
        if values.shape != (self.dim,):
            raise InputError(f"quantised z must have shape ({self.dim},), got {tuple(values.shape)}")
        self.quantised_z = values
