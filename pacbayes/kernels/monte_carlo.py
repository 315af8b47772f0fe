"""Monte Carlo ("empirical") NNGP of any torch.nn.Module (docs/kernels.md; Novak et al. 2019, s. 2.3).

The kernel is an average over S independent re-initialisations of per-initialisation kernels,

    K(x, x') = (1/S) sum_s K_s(x, x'),

which estimates the covariance of the random network's logit (the second moment: every PyTorch default
initialisation is symmetric about zero). Two estimators of K_s, with the same expectation:

- ``"readout"``, when the network ends in a linear read-out f = W phi + b (:mod:`pacbayes.kernels.readout`):
  the read-out is integrated out analytically, K_s = v_w phi_s(x) . phi_s(x') + v_b from the H penultimate
  features phi_s of the s-th initialisation; rank <= S H;
- ``"logits"``, for any other network: K_s = (1/C) sum_c f_sc(x) f_sc(x') over its C logits, each a draw of
  the same prior (independent read-out rows); rank <= S C. ``diagnostics["cross_logit_covariance_max"]``
  reports the largest covariance between two different logits relative to the mean variance (about 0).

Each initialisation is drawn on the CPU from its own seed (derived from ``seed`` with numpy's
SeedSequence), so the matrix does not depend on the device or on how samples and inputs are batched.
Initialisations are evaluated together with torch.func.vmap.

``samples=None`` chooses S before any kernel entry is computed: enough for a target entry standard error
(``target_error``, relative to the mean diagonal, measured on a pilot of initialisations on seeded Gaussian
probe inputs, never on the data) and for rank (S r >= 2 n, r = H or C), at most ``MAX_AUTO_SAMPLES``.
The first call fixes S for every later call (a cross kernel uses the training kernel's draws).

Modules that cannot be reset by their own ``reset_parameters()`` (TorchScript files, torch.export
programs, user classes holding parameters directly) are traced into a torch.export program
(:func:`pacbayes.models.as_program`) on the first inputs seen, and re-drawn by layer type with PyTorch's
default init (:func:`pacbayes.models.initialise.reset_by_layer_type`).

Standard errors are of each entry's mean over initialisations, sd_s(K_s(x, x')) / sqrt(S): measured
on at most ``ERROR_INPUTS`` evenly spaced inputs (all of their entries), and bounded for every entry by
sqrt(max_i E[K_s(x_i, x_i)^2] / S) (Cauchy-Schwarz: K_s is positive semi-definite). ``entry_errors=True``
keeps the standard error of every entry (one more n1 x n2 matrix).
"""

import copy
import math
import time

import numpy as np
import torch
from torch.func import functional_call, vmap

from pacbayes import checks
from pacbayes.device import resolve_device
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.kernels._blocks import as_inputs, check_block_size
from pacbayes.kernels.readout import find_readout
from pacbayes.memory import check_fits, format_bytes
from pacbayes.models import ExportedModel, as_plain_sequential, reset_parameters, seeded_rng
from pacbayes.models.initialise import reset_by_layer_type
from pacbayes.models.programs import as_program
from pacbayes.progress import announce, progress

ANNOUNCE_WORK = 2**30  # announce the estimate before at least this many (samples x inputs) forward evaluations
TARGET_ERROR = 0.01  # default largest entry standard error, relative to the mean diagonal
PILOT_SAMPLES = 32  # initialisations of the pilot that chooses the sample count
PILOT_INPUTS = 32  # seeded Gaussian probe inputs of the pilot
PILOT_STREAM = 0x9170  # the pilot's seeds: SeedSequence([seed, PILOT_STREAM]), apart from the kernel's
RANK_MARGIN = 2  # the chosen sample count gives at least RANK_MARGIN n features (rank >= n)
MAX_AUTO_SAMPLES = 4096  # the most initialisations the automatic choice takes
ERROR_INPUTS = 128  # inputs (per side) whose entries' standard errors are measured
CHUNK_ELEMENTS = 2**24  # per-initialisation kernels held at once while accumulating squares
ESTIMATORS = ("auto", "readout", "logits")


class MonteCarloNNGP:
    """Empirical NNGP of ``module`` from ``samples`` seeded re-initialisations (None: chosen, module docstring).

    ``init_fn(module)``: re-initialises the (float64, CPU) copy in place using torch's global RNG,
    which is seeded before each call; default: :func:`pacbayes.models.reset_parameters` (every
    submodule's ``reset_parameters()``) when every submodule with parameters has one, else the
    module is traced and re-drawn by layer type (module docstring). The read-out estimator needs the
    default initialisation (a custom ``init_fn`` uses the logit estimator).
    ``batch_size``: initialisations evaluated together (torch.func.vmap). The module must map a batch
    of inputs to logits, shape (n,) or (n, C); it is evaluated in eval mode, in float64.
    ``target_error``: the entry standard error, relative to the mean diagonal, that ``samples=None`` aims at.
    TorchScript modules are rebuilt as plain modules when they are Sequentials of torch.nn
    layers, else traced; with ``init_fn`` a TorchScript module runs one initialisation at a time.
    After :meth:`matrix`, ``diagnostics`` holds the estimator, the sample count and how it was chosen,
    the rank and smallest eigenvalue (symmetric case), and standard-error figures; ``standard_error``
    holds the per-entry standard errors when ``entry_errors=True``.
    """

    selection = ""  # why a run chose this kernel (set by the marginal family), else empty
    kind = "monte-carlo"
    default_block_size = 1024

    def __init__(
        self,
        module: torch.nn.Module,
        samples=None,
        seed: int = 0,
        init_fn=None,
        batch_size: int = 64,
        entry_errors: bool = False,
        target_error: float = TARGET_ERROR,
        estimator: str = "auto",
    ):
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        for name, value, low in (("batch_size", batch_size, 1), ("seed", seed, 0)):
            checks.integer_at_least(value, name, low)
        if samples is not None:
            checks.integer_at_least(samples, "samples", 2)
        self.target_error = checks.finite(target_error, "target_error")
        if not 0.0 < self.target_error < 1.0:
            raise InputError(f"target_error must lie in (0, 1), got {target_error}; e.g. 0.01")
        if estimator not in ESTIMATORS:
            raise InputError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if init_fn is not None and not callable(init_fn):
            raise InputError("init_fn must be a function init_fn(module) that re-initialises it in place")
        module = as_plain_sequential(module)  # TorchScript Sequentials of torch.nn layers
        with torch.no_grad():  # casting a TorchScript module's tensors must leave them leaves
            self.template = copy.deepcopy(module).to(device="cpu", dtype=torch.float64).eval()
        self.traced = init_fn is None and not _resettable(self.template)  # traced on the first inputs
        self.custom_init = init_fn is not None
        self.init_fn = init_fn or (reset_by_layer_type if self.traced else reset_parameters)
        self.logits: int | None = None
        self.width: int | None = None  # features per initialisation: H (read-out) or C (logits)
        self.requested, self.estimator, self.readout, self.estimator_reason = estimator, None, None, None
        self.samples = None if samples is None else int(samples)
        self.sample_rule: dict = {"rule": "given"} if samples is not None else {"rule": "auto"}
        self.seed, self.batch_size = int(seed), int(batch_size)
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
            "estimator": self.estimator,
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

    def _prepare(self, x: torch.Tensor) -> None:
        """Trace the template if it must be, and choose the estimator (once): read-out or logits."""
        self._trace(x)
        if self.estimator is not None:
            return
        if self.requested == "logits":
            self.estimator, self.estimator_reason = "logits", "the logit estimator was asked for"
            return
        self.readout, self.estimator_reason = find_readout(self.template, x[:2].cpu(), not self.custom_init)
        if self.readout is None and self.requested == "readout":
            raise InputError(f"no linear read-out to integrate out: {self.estimator_reason}; use estimator='auto'")
        self.estimator = "logits" if self.readout is None else "readout"
        if self.readout is not None:
            self.logits = self.readout.outputs

    def _scale(self) -> tuple:
        """(a, b) with K_s = a F_s F_s^T + b for the features F_s of one initialisation."""
        if self.readout is not None:
            return self.readout.weight_variance, self.readout.bias_variance
        return 1.0 / self.logits, 0.0

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

    def _evaluate(self, net, params, buffers, inputs) -> torch.Tensor:
        """Outputs (batch, n, ...) of every drawn initialisation on ``inputs``: the read-out's input
        features with the read-out estimator, else the logits."""
        if isinstance(net, torch.jit.ScriptModule):  # torch.func refuses jitted modules: one at a time
            outputs = []
            for i in range(next(iter(params.values())).shape[0]):
                for name, value in [*net.named_parameters(), *net.named_buffers()]:
                    value.copy_((params if name in params else buffers)[name][i])
                outputs.append(net(inputs))
            return torch.stack(outputs)
        layer = None if self.readout is None else net.get_submodule(self.readout.name)

        def run(p, b, x):
            captured = []
            hook = layer and layer.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
            try:
                out = functional_call(net, (p, b), (x,))
            finally:
                if hook:
                    hook.remove()
            return captured[0] if captured else out

        return vmap(run, in_dims=(0, 0, None), randomness="error")(params, buffers, inputs)

    def _features(self, net, params, buffers, x, block_size) -> torch.Tensor:
        """Features F_s of every initialisation on every input: (n, batch * r) float64 (draw-major)."""
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
            self.width = out.shape[2]
            if self.readout is None:
                self.logits = self.width
            chunks.append(out.permute(1, 0, 2).reshape(out.shape[1], -1))
        return torch.cat(chunks)

    def _feature_batches(self, inputs: list, seeds, device, block_size, quiet, desc="Monte Carlo NNGP"):
        """For each batch of initialisations (one per seed): the features of each array in ``inputs``."""
        net = copy.deepcopy(self.template).to(device)
        with torch.no_grad():
            for start in progress(range(0, len(seeds), self.batch_size), desc=desc, quiet=quiet, unit="batch"):
                params, buffers = (
                    {k: v.to(device) for k, v in part.items()}
                    for part in self._draw(seeds[start : start + self.batch_size])
                )
                yield [self._features(net, params, buffers, x, block_size) for x in inputs]

    def _seeds(self):
        return np.random.SeedSequence(self.seed).generate_state(self.samples)

    def _fix_samples(self, n: int, x: torch.Tensor, device, block_size, quiet) -> None:
        """Choose S (once, when not given) from a pilot on seeded Gaussian probe inputs: the larger of the
        count for ``target_error`` and the count for rank (RANK_MARGIN n features), at most MAX_AUTO_SAMPLES."""
        self._prepare(x)
        if self.samples is not None:
            return
        generator = torch.Generator().manual_seed(self.seed)
        probe = torch.randn((PILOT_INPUTS, *x.shape[1:]), generator=generator, dtype=torch.float64).to(device)
        seeds = np.random.SeedSequence([self.seed, PILOT_STREAM]).generate_state(PILOT_SAMPLES)
        sums = torch.zeros((2, PILOT_INPUTS, PILOT_INPUTS), dtype=torch.float64, device=device)
        for (features,) in self._feature_batches([probe], seeds, device, block_size, True):
            _add_draws(sums, features, features, self.width, *self._scale())
        mean, error = _entry_errors(sums, PILOT_SAMPLES)
        scale = float(mean.diagonal().mean())
        if not (math.isfinite(scale) and scale > 0.0):
            raise InputError(
                f"the random networks' outputs have mean square {scale} on the pilot inputs, so no kernel can be "
                "estimated from them; check the initialisation (init_fn) or give --kernel-samples"
            )
        spread = float(error.max()) * math.sqrt(PILOT_SAMPLES) / scale  # sd_s K_s, relative
        for_error = math.ceil((spread / self.target_error) ** 2)
        for_rank = math.ceil(RANK_MARGIN * n / self.width)
        self.samples = max(2, min(MAX_AUTO_SAMPLES, max(for_error, for_rank)))
        self.sample_rule = {
            "rule": "auto",
            "target_error": self.target_error,
            "pilot_samples": PILOT_SAMPLES,
            "pilot_relative_sd": spread,
            "for_error": for_error,
            "for_rank": for_rank,
            "cap": MAX_AUTO_SAMPLES,
        }
        announce(
            f"Monte Carlo NNGP ({self.estimator} estimator, {self.width} features per initialisation): "
            f"{self.samples} initialisations ({for_error} for an entry standard error of "
            f"{self.target_error:g} of the mean diagonal, {for_rank} for rank {RANK_MARGIN} x {n}, "
            f"at most {MAX_AUTO_SAMPLES})",
            quiet=quiet,
        )

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s K_s(x_i, x_i) for every input: float64, shape (n,)."""
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x = as_inputs(x, device, "x")
        self._fix_samples(x.shape[0], x, device, block_size, quiet)
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
        for (features,) in self._feature_batches([x], self._seeds(), device, block_size, quiet):
            total += features.square().sum(dim=1)
        a, b = self._scale()
        return total * (a / self.samples) + b

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
        self._fix_samples(n1, probe, device, block_size, True)
        batch = min(self.batch_size, self.samples)
        net = copy.deepcopy(self.template).to(device)
        seeds = np.random.SeedSequence(self.seed).generate_state(batch)
        started = time.perf_counter()
        params, buffers = ({k: v.to(device) for k, v in part.items()} for part in self._draw(seeds))
        with torch.no_grad():
            features = self._features(net, params, buffers, probe, block_size)
        per_input_draw = (time.perf_counter() - started) / (probe.shape[0] * batch)
        inputs = n1 + (0 if n2 is None else n2)
        columns = n1 if n2 is None else n2
        peak = 8 * (n1 * columns * (3 if self.entry_errors else 1) + inputs * features.shape[1])
        return per_input_draw * inputs * self.samples, peak

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s K_s(x1, x2): float64 (n1, n2) on ``device``; ``x2=None``: K(x1, x1).

        ``block_size``: inputs per forward pass. Memory: the result plus (n1 + n2) x batch_size x r
        (and two more n1 x n2 matrices when ``entry_errors``).
        """
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x1 = as_inputs(x1, device, "x1")
        symmetric = x2 is None
        inputs = [x1] if symmetric else [x1, as_inputs(x2, device, "x2")]
        n1, n2 = x1.shape[0], inputs[-1].shape[0]
        check_fits(n1 * n2 * 8 * (3 if self.entry_errors else 1), device, f"the {n1} x {n2} Monte Carlo kernel")
        self._fix_samples(n1, x1, device, block_size, quiet)
        if not quiet and self.samples * (n1 + (0 if symmetric else n2)) >= ANNOUNCE_WORK:
            seconds, peak = self._estimate(x1[:64], n1, None if symmetric else n2, device, block_size)
            announce(
                f"Monte Carlo NNGP {n1} x {n2}, {self.samples} samples: about {seconds:.0f} s, "
                f"peak memory {format_bytes(peak)} plus the model's activations"
            )
        rows, columns = _spread(n1), _spread(n2)
        kernel = torch.zeros((n1, n2), dtype=torch.float64, device=device)
        full = torch.zeros((2, n1, n2), dtype=torch.float64, device=device) if self.entry_errors else None
        sampled = torch.zeros((2, len(rows), len(columns)), dtype=torch.float64, device=device)
        moments = torch.zeros((2, n1 + (0 if symmetric else n2)), dtype=torch.float64, device=device)
        cross = None
        for features in self._feature_batches(inputs, self._seeds(), device, block_size, quiet):
            f1, f2 = features[0], features[-1]
            a, b = self._scale()
            kernel.addmm_(f1, f2.T)
            _add_draws(sampled, f1[rows], f2[columns], self.width, a, b)
            if full is not None:
                _add_draws(full, f1, f2, self.width, a, b)
            stacked = torch.cat(features)
            diagonal = stacked.reshape(stacked.shape[0], -1, self.width).square().sum(dim=2) * a + b
            moments[0] += diagonal.sum(dim=1)
            moments[1] += diagonal.square().sum(dim=1)
            if self.readout is None:
                per_logit = f1.reshape(n1, -1, self.logits)  # (n, draws, C)
                products = torch.einsum("nsc,nsd->cd", per_logit, per_logit)
                cross = products if cross is None else cross + products
        kernel.mul_(a / self.samples).add_(b)
        self._summarise(kernel, moments / self.samples, sampled, full, symmetric)
        if cross is not None:
            self._cross_logit(cross)
        return kernel

    def _cross_logit(self, cross: torch.Tensor) -> None:
        """Largest |E f_c f_c'| (c != c') over the mean E f_c^2, on x1 (0 for one logit)."""
        diagonal = cross.diagonal()
        off = (cross - torch.diag(diagonal)).abs().max() if self.logits > 1 else cross.new_zeros(())
        mean = float(diagonal.mean())
        self.diagnostics["cross_logit_covariance_max"] = float(off) / mean if mean > 0 else None

    def _summarise(self, kernel, moments, sampled, full, symmetric) -> None:
        """Fill ``diagnostics`` (and ``standard_error``) from the accumulated moments (per initialisation)."""
        s = self.samples
        bound = float(moments[1].max().sqrt()) / math.sqrt(s)
        scale = float(moments[0].mean())
        _, errors = _entry_errors(sampled, s)
        self.diagnostics = {
            "estimator": self.estimator,
            "estimator_reason": self.estimator_reason,
            "samples": s,
            "sample_rule": self.sample_rule,
            "features_per_initialisation": self.width,
            "logits": self.logits,
            "mean_diagonal": scale,
            "standard_error_max_relative": float(errors.max()) / scale if scale > 0 else None,
            "standard_error_mean_relative": float(errors.mean()) / scale if scale > 0 else None,
            "standard_error_inputs": list(sampled.shape[1:]),
            "standard_error_bound": bound,
            "standard_error_bound_relative": bound / scale if scale > 0 else None,
        }
        if full is not None:
            _, self.standard_error = _entry_errors(full, s)
            self.diagnostics["standard_error_max"] = float(self.standard_error.max())
        if symmetric:
            eigenvalues = torch.linalg.eigvalsh(kernel)
            tolerance = eigenvalues.abs().max() * kernel.shape[0] * torch.finfo(torch.float64).eps
            rank = int((eigenvalues > tolerance).sum())
            self.diagnostics.update(rank=rank, full_rank=rank == kernel.shape[0], min_eigenvalue=float(eigenvalues[0]))


def _spread(n: int) -> torch.Tensor:
    """At most ERROR_INPUTS evenly spaced indices of n inputs (all of them when n is small)."""
    return torch.linspace(0, n - 1, min(n, ERROR_INPUTS)).round().long().unique()


def _add_draws(sums: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, width: int, a: float, b: float) -> None:
    """Add sum_s K_s and sum_s K_s^2 (entrywise) over the initialisations in f1 (n1, draws r), f2 (n2, draws r)
    to ``sums`` (2, n1, n2), with K_s = a F_s F_s^T + b."""
    g1, g2 = f1.reshape(f1.shape[0], -1, width), f2.reshape(f2.shape[0], -1, width)
    chunk = max(1, CHUNK_ELEMENTS // (f1.shape[0] * f2.shape[0]))
    for start in range(0, g1.shape[1], chunk):
        draws = torch.einsum("nbr,mbr->bnm", g1[:, start : start + chunk], g2[:, start : start + chunk]) * a + b
        sums[0] += draws.sum(dim=0)
        sums[1] += draws.square().sum(dim=0)


def _entry_errors(sums: torch.Tensor, samples: int) -> tuple:
    """(mean, standard error of the mean) of every entry from ``sums`` = (sum_s K_s, sum_s K_s^2)."""
    mean = sums[0] / samples
    variance = (sums[1] / samples - mean * mean).clamp(min=0.0) * (samples / (samples - 1))
    return mean, (variance / samples).sqrt()


def _resettable(module: torch.nn.Module) -> bool:
    """Whether every submodule holding parameters has its own reset_parameters() (a plain module)."""
    if isinstance(module, (torch.jit.ScriptModule, ExportedModel)):
        return False
    return all(
        callable(getattr(layer, "reset_parameters", None))
        for layer in module.modules()
        if any(True for _ in layer.parameters(recurse=False))
    )
