"""Monte Carlo ("empirical") NNGP of any torch.nn.Module (docs/kernels.md; Novak et al. 2019, s. 2.3).

The kernel is the second moment of the network's single logit over random initialisations,

    K(x, x') = (1/S) sum_s f_s(x) f_s(x'),   s = 1..S independent re-initialisations,

which is the covariance of the function prior whenever the initialisation is symmetric about zero
(every PyTorch default is). Each initialisation is drawn on the CPU from its own seed (derived from
``seed`` with numpy's SeedSequence), so the matrix does not depend on the device or on how
samples and inputs are batched. Initialisations are evaluated together with torch.func.vmap.

A model with C > 1 outputs has C iid logits (independent read-out rows), each a draw of the same
function prior: the kernel of one logit averages over all S C of them, (1/(S C)) sum_{s,c} f_sc(x) f_sc(x'),
and ``diagnostics["cross_logit_covariance_max"]`` reports the largest covariance between two different
logits relative to the mean variance (about 0 when they are independent, as they should be).

Modules that cannot be reset by their own ``reset_parameters()`` (TorchScript files, torch.export
programs, user classes holding parameters directly) are traced into a torch.export program
(:func:`pacbayes.models.as_program`) on the first inputs seen, and re-drawn by layer type with PyTorch's
default init (:func:`pacbayes.models.initialise.reset_by_layer_type`).

K has rank <= S C: with fewer samples than inputs it is singular. The entrywise standard error is
bounded without storing anything beyond the result: Var(f f') <= E[f^2 f'^2] <=
sqrt(E f^4 E f'^4) (Cauchy-Schwarz), so every entry's standard error is at most
sqrt(max_i E[f(x_i)^4] / S) (with S, not S C: the logits of one draw are uncorrelated but not
independent, so the bound does not count them as extra samples). ``entry_errors=True`` also keeps
the per-entry empirical standard errors (one more n1 x n2 matrix).
"""

import copy
import time

import numpy as np
import torch
from torch.func import functional_call, vmap

from pacbayes import checks
from pacbayes.device import resolve_device
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.kernels._blocks import as_inputs, check_block_size
from pacbayes.memory import check_fits, format_bytes
from pacbayes.models import ExportedModel, as_plain_sequential, reset_parameters, seeded_rng
from pacbayes.models.initialise import reset_by_layer_type
from pacbayes.models.programs import as_program
from pacbayes.progress import announce, progress

ANNOUNCE_WORK = 2**30  # announce the estimate before at least this many (samples x inputs) forward evaluations


class MonteCarloNNGP:
    """Empirical NNGP of ``module`` from ``samples`` seeded re-initialisations.

    ``init_fn(module)``: re-initialises the (float64, CPU) copy in place using torch's global RNG,
    which is seeded before each call; default: :func:`pacbayes.models.reset_parameters` (every
    submodule's ``reset_parameters()``) when every submodule with parameters has one, else the
    module is traced and re-drawn by layer type (module docstring).
    ``batch_size``: initialisations evaluated together (torch.func.vmap). The module must map a batch
    of inputs to logits, shape (n,) or (n, C); it is evaluated in eval mode, in float64.
    TorchScript modules are rebuilt as plain modules when they are Sequentials of torch.nn
    layers, else traced; with ``init_fn`` a TorchScript module runs one initialisation at a time.
    After :meth:`matrix`, ``diagnostics`` holds the sample count, the rank and smallest
    eigenvalue (symmetric case), and standard-error figures; ``standard_error`` holds the
    per-entry standard errors when ``entry_errors=True``.
    """

    kind = "monte-carlo"
    default_block_size = 1024

    def __init__(
        self,
        module: torch.nn.Module,
        samples: int,
        seed: int = 0,
        init_fn=None,
        batch_size: int = 64,
        entry_errors: bool = False,
    ):
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        for name, value, low in (("samples", samples, 2), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            checks.integer_at_least(value, name, low)
        if init_fn is not None and not callable(init_fn):
            raise InputError("init_fn must be a function init_fn(module) that re-initialises it in place")
        module = as_plain_sequential(module)  # TorchScript Sequentials of torch.nn layers
        with torch.no_grad():  # casting a TorchScript module's tensors must leave them leaves
            self.template = copy.deepcopy(module).to(device="cpu", dtype=torch.float64).eval()
        self.traced = init_fn is None and not _resettable(self.template)  # traced on the first inputs
        self.init_fn = init_fn or (reset_by_layer_type if self.traced else reset_parameters)
        self.logits: int | None = None
        self.samples, self.seed, self.batch_size = int(samples), int(seed), int(batch_size)
        self.entry_errors = bool(entry_errors)
        self.diagnostics: dict = {}
        self.standard_error: torch.Tensor | None = None

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "module": type(self.template).__name__,
            "parameters": sum(p.numel() for p in self.template.parameters()),
            "samples": self.samples,
            "seed": self.seed,
            "init": getattr(self.init_fn, "__name__", "init_fn"),
            "outputs": self.logits,
        }

    def _trace(self, x: torch.Tensor) -> None:
        """Replace a template that cannot reset itself by its torch.export program (once)."""
        if not self.traced or isinstance(self.template, ExportedModel):
            return
        try:
            program, _ = as_program(self.template, x[:2].cpu())
        except ModelLoadError as err:
            raise InputError(f"{err}; pass init_fn(module) that re-initialises every parameter in place") from None
        with torch.no_grad():  # a program's buffers may require grad: cast them as leaves
            self.template = ExportedModel(program).to(dtype=torch.float64)

    def _draw(self, seeds) -> tuple:
        """Stacked (parameters, buffers) of one re-initialisation per seed."""
        drawn = []
        for value in seeds:  # the caller's CPU RNG stream is left untouched
            with seeded_rng(int(value)), torch.no_grad():
                self.init_fn(self.template)
            drawn.append(
                (
                    {k: v.detach().clone() for k, v in self.template.named_parameters()},
                    {k: v.detach().clone() for k, v in self.template.named_buffers()},
                )
            )
        return tuple({k: torch.stack([d[i][k] for d in drawn]) for k in drawn[0][i]} for i in (0, 1))

    @staticmethod
    def _evaluate(net, params, buffers, inputs) -> torch.Tensor:
        """Outputs (batch, n, ...) of every drawn initialisation on ``inputs``."""
        if isinstance(net, torch.jit.ScriptModule):  # torch.func refuses jitted modules: one at a time
            outputs = []
            for i in range(next(iter(params.values())).shape[0]):
                for name, value in [*net.named_parameters(), *net.named_buffers()]:
                    value.copy_((params if name in params else buffers)[name][i])
                outputs.append(net(inputs))
            return torch.stack(outputs)
        return vmap(lambda p, b, x: functional_call(net, (p, b), (x,)), in_dims=(0, 0, None), randomness="error")(
            params, buffers, inputs
        )

    def _features(self, net, params, buffers, x, block_size) -> torch.Tensor:
        """Logits of every initialisation on every input: (n, batch * C) float64 (draw-major)."""
        chunks = []
        for start in range(0, x.shape[0], block_size):
            inputs = x[start : start + block_size]
            try:
                out = self._evaluate(net, params, buffers, inputs)
            except Exception as err:  # noqa: BLE001  (any failure of the user's forward pass)
                raise InputError(
                    f"the model failed on inputs of shape {tuple(inputs.shape)} "
                    f"({type(err).__name__}: {' '.join(str(err).split())[:300]}); check the "
                    f"input shape, and that forward() is deterministic with no "
                    f"data-dependent Python control flow"
                ) from None
            out = out.reshape(out.shape[0], out.shape[1], -1) if out.dim() in (2, 3) else out
            if out.dim() != 3 or out.shape[1] != inputs.shape[0] or out.shape[2] < 1:
                raise InputError(
                    f"the model must output logits per input, shape (n,) or (n, C); "
                    f"got {tuple(out.shape[1:])} for {inputs.shape[0]} inputs"
                )
            self.logits = out.shape[2]
            chunks.append(out.permute(1, 0, 2).reshape(out.shape[1], -1))
        return torch.cat(chunks)

    def _feature_batches(self, inputs: list, device, block_size, quiet):
        """For each batch of initialisations: the features (n, batch) of each array in ``inputs``."""
        self._trace(inputs[0])
        net = copy.deepcopy(self.template).to(device)
        seeds = np.random.SeedSequence(self.seed).generate_state(self.samples)
        with torch.no_grad():
            for start in progress(
                range(0, self.samples, self.batch_size), desc="Monte Carlo NNGP", quiet=quiet, unit="batch"
            ):
                params, buffers = (
                    {k: v.to(device) for k, v in part.items()}
                    for part in self._draw(seeds[start : start + self.batch_size])
                )
                yield [self._features(net, params, buffers, x, block_size) for x in inputs]

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s f_s(x_i)^2 for every input: float64, shape (n,)."""
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x = as_inputs(x, device, "x")
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
        for (features,) in self._feature_batches([x], device, block_size, quiet):
            total += features.square().sum(dim=1)
        return total / (self.samples * self.logits)

    def estimate(self, n1: int, n2=None, input_shape=None, *, device=None, block_size=None) -> tuple:
        """(seconds, peak bytes) of ``matrix`` on n1 x n2 inputs of ``input_shape`` (n2 None: symmetric), from
        one timed batch of initialisations on a probe of at most 64 random inputs (seeded)."""
        if input_shape is None:
            raise InputError("estimate needs the shape of one input; pass input_shape=(...)")
        device = resolve_device(device)
        probe = torch.randn((min(64, n1), *tuple(input_shape)), generator=torch.Generator().manual_seed(0))
        return self._estimate(probe.to(device, torch.float64), n1, n2, device, block_size)

    def _estimate(self, probe, n1, n2, device, block_size) -> tuple:
        block_size = check_block_size(block_size, self.default_block_size)
        batch = min(self.batch_size, self.samples)
        self._trace(probe)
        net = copy.deepcopy(self.template).to(device)
        seeds = np.random.SeedSequence(self.seed).generate_state(batch)
        started = time.perf_counter()
        params, buffers = ({k: v.to(device) for k, v in part.items()} for part in self._draw(seeds))
        with torch.no_grad():
            features = self._features(net, params, buffers, probe, block_size)
        per_input_draw = (time.perf_counter() - started) / (probe.shape[0] * batch)
        inputs = n1 + (0 if n2 is None else n2)
        columns = n1 if n2 is None else n2
        peak = 8 * (n1 * columns * (2 if self.entry_errors else 1) + inputs * features.shape[1])
        return per_input_draw * inputs * self.samples, peak

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s f_s(x1) f_s(x2)^T: float64 (n1, n2) on ``device``; ``x2=None``: K(x1, x1).

        ``block_size``: inputs per forward pass. Memory: the result plus (n1 + n2) x batch_size
        (and a second n1 x n2 matrix when ``entry_errors``).
        """
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x1 = as_inputs(x1, device, "x1")
        symmetric = x2 is None
        inputs = [x1] if symmetric else [x1, as_inputs(x2, device, "x2")]
        n1, n2 = x1.shape[0], inputs[-1].shape[0]
        results = n1 * n2 * 8 * (2 if self.entry_errors else 1)
        check_fits(results, device, f"the {n1} x {n2} Monte Carlo kernel")
        if not quiet and self.samples * (n1 + (0 if symmetric else n2)) >= ANNOUNCE_WORK:
            seconds, peak = self._estimate(x1[:64], n1, None if symmetric else n2, device, block_size)
            announce(
                f"Monte Carlo NNGP {n1} x {n2}, {self.samples} samples: about {seconds:.0f} s, "
                f"peak memory {format_bytes(peak)} plus the model's activations"
            )
        kernel = torch.zeros((n1, n2), dtype=torch.float64, device=device)
        squares = torch.zeros_like(kernel) if self.entry_errors else None
        moments = torch.zeros((2, n1 + (0 if symmetric else n2)), dtype=torch.float64, device=device)
        cross = None
        for features in self._feature_batches(inputs, device, block_size, quiet):
            f1, f2 = features[0], features[-1]
            kernel.addmm_(f1, f2.T)
            stacked = torch.cat(features)
            moments[0] += stacked.square().sum(dim=1)
            moments[1] += stacked.pow(4).sum(dim=1)
            if squares is not None:
                squares.addmm_(f1.square(), f2.square().T)
            per_logit = f1.reshape(n1, -1, self.logits)  # (n, draws, C)
            products = torch.einsum("nsc,nsd->cd", per_logit, per_logit)
            cross = products if cross is None else cross + products
        draws = self.samples * self.logits
        kernel /= draws
        self._summarise(kernel, moments / draws, squares, symmetric, draws)
        self._cross_logit(cross)
        return kernel

    def _cross_logit(self, cross: torch.Tensor) -> None:
        """Largest |E f_c f_c'| (c != c') over the mean E f_c^2, on x1 (0 for one logit)."""
        self.diagnostics["logits"] = self.logits
        diagonal = cross.diagonal()
        off = (cross - torch.diag(diagonal)).abs().max() if self.logits > 1 else cross.new_zeros(())
        mean = float(diagonal.mean())
        self.diagnostics["cross_logit_covariance_max"] = float(off) / mean if mean > 0 else None

    def _summarise(self, kernel, moments, squares, symmetric, draws) -> None:
        """Fill ``diagnostics`` (and ``standard_error``) from the accumulated moments (per draw of a logit)."""
        s = draws
        bound = float(moments[1].max().sqrt()) / float(np.sqrt(self.samples))
        scale = float(moments[0].mean())
        self.diagnostics = {
            "samples": self.samples,
            "logit_draws": s,
            "standard_error_bound": bound,
            "standard_error_bound_relative": bound / scale if scale > 0 else None,
        }
        if squares is not None:
            variance = squares.div_(s).sub_(kernel * kernel).clamp_(min=0.0).mul_(s / (s - 1))
            self.standard_error = variance.div_(s).sqrt_()
            self.diagnostics["standard_error_max"] = float(self.standard_error.max())
        if symmetric:
            eigenvalues = torch.linalg.eigvalsh(kernel)
            tolerance = eigenvalues.abs().max() * kernel.shape[0] * torch.finfo(torch.float64).eps
            rank = int((eigenvalues > tolerance).sum())
            self.diagnostics.update(rank=rank, full_rank=rank == kernel.shape[0], min_eigenvalue=float(eigenvalues[0]))


def _resettable(module: torch.nn.Module) -> bool:
    """Whether every submodule holding parameters has its own reset_parameters() (a plain module)."""
    if isinstance(module, (torch.jit.ScriptModule, ExportedModel)):
        return False
    return all(
        callable(getattr(layer, "reset_parameters", None))
        for layer in module.modules()
        if any(True for _ in layer.parameters(recurse=False))
    )
