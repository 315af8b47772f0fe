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

``projection=r`` (read-out estimator, r < H) replaces each initialisation's features by r random projections of
them, phi_s G_s with G_s an H x r matrix of independent N(0, 1/r) entries drawn from the initialisation's own
seed (so every input of a draw, training or test, meets the same G_s). E[G_s G_s^T] = I, so
K_s = v_w (phi_s G_s) . (phi_s' G_s) + v_b is still unbiased (r read-out rows of the same prior, as the logit
estimator has C), and K stays the exact Gram matrix of the projected features (positive semi-definite, rank
<= S r, one more with a read-out bias). The projection adds (K_s(x, x) K_s(x', x') + K_s(x, x')^2) / r to an
entry's variance per initialisation: for a diagonal entry 2/r of its square, small beside the spread between
initialisations (about 1 relative on CIFAR-10's conv-BN-max-pool CNN, so r = 128 needs about 1.5% more of
them). What it saves: the
n x n Gram product per initialisation costs n^2 r / 2 multiply-adds instead of n^2 H / 2, for n H r more in
the forward dtype; it pays once n is several times r (docs/kernels.md).

Each initialisation is drawn in float64 on the CPU from its own seed (derived from ``seed`` with numpy's
SeedSequence), so the draws do not depend on the device or on how samples and inputs are batched. The
forward passes run in ``precision`` (float32 by default: the features are the float64 network's up to
float32 rounding, about 1e-7 relative, far below the sampling error; the kernel's last bits then depend on
the batching) and the sums of feature products accumulate in float64, so K is the exact Gram matrix of the
rounded features (positive semi-definite; only K's products widen the features to float64, while a cross kernel
such as Q*'s test kernel is a float32 product of them). Initialisations are evaluated together: as one wider network
(:mod:`pacbayes.kernels.stacked`: grouped convolutions, BatchNorm folded into the convolution before it)
when that copy reproduces the module on a probe, else with torch.func.vmap.

The module runs in eval mode, so a freshly drawn BatchNorm (running mean 0, variance 1, weight 1, bias 0)
is the fixed map x / sqrt(1 + eps): the kernel of x and x' never depends on which other inputs share a
batch, as normalising by batch statistics would make it.

``samples=None`` chooses S before any kernel entry is computed: enough for a target entry standard error
(``target_error``, relative to the mean diagonal, measured by a pilot of initialisations on evenly spaced
rows of ``pilot_inputs``, with a margin) and for rank (S r >= 2 n, r = H or C), at most ``MAX_AUTO_SAMPLES``.
The pilot never runs on the inputs the kernel is computed on: a count chosen from the training inputs would
make the prior depend on the sample. Without ``pilot_inputs`` it runs on seeded Gaussian probes of the
inputs' shape, whose spread can be several times smaller than real images' (so the target can be missed
there; the diagnostics report the standard error reached); the marginal family passes held-out inputs.
The first call fixes S for every later one (a cross kernel uses the training kernel's draws).
:meth:`MonteCarloNNGP.train_and_test` returns K(x, x), K(x, x_test) and the test diagonal from one pass.

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
from pacbayes.defaults import KERNEL_TARGET_ERROR as TARGET_ERROR  # largest entry standard error / mean diagonal
from pacbayes.device import resolve_device
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.estimates import seconds_per_multiply_add
from pacbayes.kernels._blocks import as_inputs, check_block_size, mirror_lower
from pacbayes.kernels.readout import find_readout
from pacbayes.kernels.stacked import load, stack_module
from pacbayes.memory import check_fits, format_bytes
from pacbayes.models import ExportedModel, as_plain_sequential, reset_parameters, seeded_rng
from pacbayes.models.initialise import reset_by_layer_type
from pacbayes.models.programs import as_program
from pacbayes.progress import announce, progress

ANNOUNCE_WORK = 2**30  # announce the estimate before at least this many (samples x inputs) forward evaluations
PILOT_SAMPLES = 64  # initialisations of the pilot that chooses the sample count
PILOT_INPUTS = 64  # evenly spaced inputs of the pilot (seeded Gaussian probes without pilot_inputs)
PILOT_MARGIN = 1.2  # the count aims at target_error / PILOT_MARGIN: the pilot sees fewer entries and draws
PILOT_STREAM = 0x9170  # the pilot's seeds: SeedSequence([seed, PILOT_STREAM]), apart from the kernel's
RANK_MARGIN = 2  # the chosen sample count gives at least RANK_MARGIN n features (rank >= n)
MAX_AUTO_SAMPLES = 4096  # the most initialisations the automatic choice takes
GRAM_ROWS = 256  # rows per product of the symmetric Gram matrix's lower block triangle
SPECTRUM_MULTIPLY_ADDS = 1.6  # the diagnostics' eigvalsh of an n x n K, in n^3 multiply-adds at a float64 product's
# rate: 4.2 s against 20.6 ps per multiply-add at n = 5,000 (torch profiler, 2 threads, AVX-512, idle); certify's
# estimate (pacbayes.families.estimates) uses it too
ERROR_INPUTS = 128  # inputs (per side) whose entries' standard errors are measured
CHUNK_ELEMENTS = 2**24  # per-initialisation kernels held at once while accumulating squares
ACTIVATION_ELEMENTS = 2**21  # a forward pass's widest activation, all copies of a batch together (8 MiB in float32:
# cache-sized blocks ran the CIFAR-10 conv-BN-max-pool kernel 1.1-1.4x faster than 128 MiB ones, 2 cores)
ESTIMATORS = ("auto", "readout", "logits")
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
CHECK_INPUTS, CHECK_SAMPLES = 4, 3  # the stacked copy is checked against the module on these many inputs and draws
CHECK_STREAM = 0xC4EC  # the check's seeds: SeedSequence([seed, CHECK_STREAM])
PROJECTION_STREAM = 0x960C  # G_s of the draw seeded v: from a Generator seeded by SeedSequence([v, PROJECTION_STREAM])
CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}  # relative to the largest output


class MonteCarloNNGP:
    """Empirical NNGP of ``module`` from ``samples`` seeded re-initialisations (None: chosen, module docstring).

    ``init_fn(module)``: re-initialises the (float64, CPU) copy in place using torch's global RNG,
    which is seeded before each call; default: :func:`pacbayes.models.reset_parameters` (every
    submodule's ``reset_parameters()``) when every submodule with parameters has one, else the
    module is traced and re-drawn by layer type (module docstring). The read-out estimator needs the
    default initialisation (a custom ``init_fn`` uses the logit estimator).
    ``batch_size``: initialisations evaluated together. The module must map a batch of inputs to logits,
    shape (n,) or (n, C); it is evaluated in eval mode, in ``precision`` ("float32" or "float64").
    ``target_error``: the entry standard error, relative to the mean diagonal, that ``samples=None`` aims at.
    ``pilot_inputs``: inputs the pilot that chooses S runs on (None: the kernel's first inputs). Inputs from
    the data's distribution but outside the training sample keep the prior independent of the sample.
    ``projection``: r random projections of each initialisation's read-out features (module docstring); None, or
    r >= H, or the logit estimator: the features themselves (``diagnostics["projection"]`` says which).
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
        batch_size: int = 16,
        entry_errors: bool = False,
        target_error: float = TARGET_ERROR,
        estimator: str = "auto",
        precision: str = "float32",
        pilot_inputs=None,
        projection: int | None = None,
    ):
        if not isinstance(module, torch.nn.Module):
            raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        for name, value, low in (("batch_size", batch_size, 1), ("seed", seed, 0)):
            checks.integer_at_least(value, name, low)
        if samples is not None:
            checks.integer_at_least(samples, "samples", 2)
        if projection is not None:
            checks.integer_at_least(projection, "projection (random projections per initialisation)", 1)
        self.target_error = checks.finite(target_error, "target_error")
        if not 0.0 < self.target_error < 1.0:
            raise InputError(f"target_error must lie in (0, 1), got {target_error}; e.g. 0.01")
        if estimator not in ESTIMATORS:
            raise InputError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.dtype = PRECISIONS[precision]
        self.pilot_inputs = (
            None if pilot_inputs is None else as_inputs(pilot_inputs, torch.device("cpu"), "pilot_inputs")
        )
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
        self.projection = None if projection is None else int(projection)  # asked for
        self.projected: int | None = None  # applied: r, once the estimator is chosen (None: the features themselves)
        self.projection_reason = "not asked for"
        self.samples = None if samples is None else int(samples)
        self.sample_rule: dict = {"rule": "given"} if samples is not None else {"rule": "auto"}
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.entry_errors = bool(entry_errors)
        self.diagnostics: dict = {}
        self.standard_error: torch.Tensor | None = None
        self.evaluation = ""  # "stacked", or "vmap (why not stacked)"
        self._networks: dict = {}
        self._widest: int | None = None

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
            "precision": str(self.dtype).removeprefix("torch."),
            "evaluation": self.evaluation,
            "projection": self.projected,
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
            self._choose_projection()
            return
        self.readout, self.estimator_reason = find_readout(self.template, x[:2].cpu(), not self.custom_init)
        if self.readout is None and self.requested == "readout":
            raise InputError(f"no linear read-out to integrate out: {self.estimator_reason}; use estimator='auto'")
        self.estimator = "logits" if self.readout is None else "readout"
        if self.readout is not None:
            self.logits = self.readout.outputs
        self._choose_projection()

    def _choose_projection(self) -> None:
        """Apply the asked-for projection only where it narrows read-out features; say why not otherwise."""
        if self.projection is None:
            return
        if self.readout is None:
            self.projection_reason = "not applied: the logit estimator has no read-out features to project"
        elif self.projection >= self.readout.width:
            self.projection_reason = f"not applied: r = {self.projection} >= the {self.readout.width} read-out features"
        else:
            self.projected = self.projection
            self.projection_reason = f"{self.readout.width} read-out features -> {self.projection} projections"

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

    def _projections(self, seeds, device):
        """G_s (batch, H, r) of each seed's draw, in the forward dtype on ``device`` (None without projection):
        N(0, 1/r) entries from a generator of the seed's own, drawn in float64 on the CPU."""
        if self.projected is None:
            return None
        width, r = self.readout.width, self.projected
        drawn = []
        for value in seeds:
            state = int(np.random.SeedSequence([int(value), PROJECTION_STREAM]).generate_state(1)[0])
            generator = torch.Generator().manual_seed(state)
            drawn.append(torch.randn((width, r), generator=generator, dtype=torch.float64) / math.sqrt(r))
        return torch.stack(drawn).to(device=device, dtype=self.dtype)

    def _network(self, device, x: torch.Tensor):
        """The network the draws run through on ``device`` (built once): the stacked copy
        (:mod:`pacbayes.kernels.stacked`) when it reproduces the module's own forward on the first inputs seen,
        else a copy evaluated with torch.func.vmap; in the forward dtype either way."""
        key = str(device)
        if key not in self._networks:
            self._networks[key] = self._build_network(device, x[:CHECK_INPUTS])
        return self._networks[key]

    def _build_network(self, device, probe: torch.Tensor) -> tuple:
        """(network, its stacked layers) or (a plain copy, None) for vmap; sets ``evaluation``."""
        plain = copy.deepcopy(self.template).to(device=device, dtype=self.dtype)
        stacked, layers = stack_module(self.template)
        if stacked is not None:
            stacked = stacked.to(device=device, dtype=self.dtype)
            reason = self._check_stacked(stacked, layers, plain, probe)
            if reason is None:
                self.evaluation = "stacked"
                return stacked, layers
            layers = reason
        self.evaluation = f"vmap ({layers})"
        return plain, None

    def _check_stacked(self, stacked, layers, plain, probe) -> str | None:
        """None when the stacked copy gives the module's own outputs (vmapped, same dtype) for CHECK_SAMPLES
        draws on ``probe``, else why not."""
        seeds = np.random.SeedSequence([self.seed, CHECK_STREAM]).generate_state(CHECK_SAMPLES)
        params, buffers = ({k: v.to(probe.device, self.dtype) for k, v in part.items()} for part in self._draw(seeds))
        with torch.no_grad():
            try:
                got = self._evaluate(stacked, layers, params, buffers, probe.to(self.dtype))
            except Exception as err:  # noqa: BLE001  (a forward that mixes the stacked channels)
                return f"the stacked copy failed: {type(err).__name__}"
            expected = self._evaluate(plain, None, params, buffers, probe.to(self.dtype))
        if got.shape != expected.reshape(got.shape[0], got.shape[1], -1).shape:
            return "the stacked copy's outputs have another shape"
        expected = expected.reshape(got.shape)
        tolerance = CHECK_TOLERANCE[self.dtype] * float(expected.abs().max())
        if not bool(((got - expected).abs() <= tolerance).all()):
            return "the stacked copy's outputs differ from the module's (its forward mixes channels)"
        return None

    def _evaluate(self, net, layers, params, buffers, inputs) -> torch.Tensor:
        """Outputs (batch, n, r) of every drawn initialisation on ``inputs``: the read-out's input
        features with the read-out estimator, else the logits; ``layers``: the stacked copy's layers."""
        copies = next(iter({**params, **buffers}.values())).shape[0]
        if layers is not None:
            load(layers, {**params, **buffers}, copies)
            out = self._run(net, self._forward_inputs(inputs, layers))
            out = out.reshape(inputs.shape[0], -1)
            if self.readout is not None and out.shape[1] == self.readout.width:  # the shared input itself
                out = out.repeat(1, copies)
            return out.reshape(inputs.shape[0], copies, -1).transpose(0, 1)
        if isinstance(net, torch.jit.ScriptModule):  # torch.func refuses jitted modules: one at a time
            outputs = []
            for i in range(copies):
                for name, value in [*net.named_parameters(), *net.named_buffers()]:
                    value.copy_((params if name in params else buffers)[name][i])
                outputs.append(net(inputs))
            out = torch.stack(outputs)
        else:
            out = vmap(lambda p, b, x: self._run(net, x, (p, b)), in_dims=(0, 0, None), randomness="error")(
                params, buffers, inputs
            )
        return out.reshape(out.shape[0], out.shape[1], -1) if out.dim() in (2, 3) else out

    def _run(self, net, x, state=None) -> torch.Tensor:
        """``net`` on ``x`` (with ``state`` = (parameters, buffers) through functional_call, under vmap): the
        read-out's input with the read-out estimator, else the output. Without ``state`` the pass stops at
        the read-out (its output is not needed)."""
        layer = None if self.readout is None else net.get_submodule(self.readout.name)
        captured = []

        def capture(module, args):
            captured.append(args[0])
            if state is None:
                raise _Captured

        hook = layer and layer.register_forward_pre_hook(capture)
        try:
            out = net(x) if state is None else functional_call(net, state, (x,))
        except _Captured:
            out = None
        finally:
            if hook:
                hook.remove()
        return captured[0] if captured else out

    def _block(self, block_size: int, copies: int, x: torch.Tensor) -> int:
        """Inputs per forward pass: at most ``block_size``, and few enough that one activation of every copy
        stays within ACTIVATION_ELEMENTS (measured on the first inputs' widest layer)."""
        if self._widest is None:
            self._widest = self._widest_activation(x[:2])
        return max(1, min(block_size, ACTIVATION_ELEMENTS // max(1, copies * self._widest)))

    def _widest_activation(self, x: torch.Tensor) -> int:
        """Elements of the widest output of any layer of the module, per input, for one initialisation."""
        sizes = [x[0].numel()]
        hooks = [
            layer.register_forward_hook(lambda module, args, out: sizes.append(out.numel() // x.shape[0]))
            for layer in self.template.modules()
            if not any(True for _ in layer.children()) and not isinstance(self.template, torch.jit.ScriptModule)
        ]
        try:
            with torch.no_grad():
                self.template(x.to("cpu", torch.float64))
        except Exception:  # noqa: BLE001  (the forward pass reports its own failure later)
            pass
        finally:
            for hook in hooks:
                hook.remove()
        return max(sizes)

    def _forward_inputs(self, x: torch.Tensor, layers) -> torch.Tensor:
        """``x`` in the forward dtype; images (n, C, H, W) channels-last for the stacked copy (``layers``), the
        layout its convolutions run fastest in."""
        if layers is None or x.dim() != 4:
            return x.to(self.dtype)
        return x.to(dtype=self.dtype, memory_format=torch.channels_last)

    def _features(self, net, layers, params, buffers, x, block_size, into=None, projections=None) -> torch.Tensor:
        """Features F_s of every initialisation on every input: (n, batch * r) in the forward dtype (draw-major),
        each block of inputs written into one array as it is computed: ``into`` when it has that shape;
        ``projections``: each draw's G_s (:meth:`_projections`), F_s = phi_s G_s."""
        features = None
        copies = next(iter({**params, **buffers}.values())).shape[0]
        step = self._block(block_size, copies, x)
        x = self._forward_inputs(x, layers)  # no copy when already so
        for start in range(0, x.shape[0], step):
            inputs = x[start : start + step]
            try:
                out = self._evaluate(net, layers, params, buffers, inputs)
            except Exception as err:  # noqa: BLE001  (any failure of the user's forward pass)
                raise InputError(
                    f"the model failed on inputs of shape {tuple(inputs.shape)} "
                    f"({type(err).__name__}: {' '.join(str(err).split())[:300]}); check the "
                    f"input shape, and that forward() is deterministic with no "
                    f"data-dependent Python control flow"
                ) from None
            if projections is not None:
                out = torch.bmm(out, projections)
            if out.dim() != 3 or out.shape[1] != inputs.shape[0] or out.shape[2] < 1:
                raise InputError(
                    f"the model must output logits per input, shape (n,) or (n, C); "
                    f"got {tuple(out.shape[1:])} for {inputs.shape[0]} inputs"
                )
            self.width = out.shape[2]
            if self.readout is None:
                self.logits = self.width
            if features is None:
                shape = (x.shape[0], copies * self.width)
                reuse = into is not None and into.shape == shape and into.device == x.device
                features = into if reuse else torch.empty(shape, dtype=self.dtype, device=x.device)
            features[start : start + step].view(-1, copies, self.width).copy_(out.transpose(0, 1))
        return features

    def _feature_batches(self, inputs: list, seeds, device, block_size, quiet, desc="Monte Carlo NNGP"):
        """For each batch of initialisations (one per seed): the features of each array in ``inputs``, in arrays
        that the next batch overwrites (use them before asking for it)."""
        net, layers = self._network(device, inputs[0])
        inputs = [self._forward_inputs(x, layers) for x in inputs]  # once for every batch of initialisations
        features = [None] * len(inputs)
        with torch.no_grad():
            for start in progress(range(0, len(seeds), self.batch_size), desc=desc, quiet=quiet, unit="batch"):
                batch = seeds[start : start + self.batch_size]
                params, buffers = ({k: v.to(device, self.dtype) for k, v in part.items()} for part in self._draw(batch))
                projections = self._projections(batch, device)
                features = [
                    self._features(net, layers, params, buffers, x, block_size, into, projections)
                    for x, into in zip(inputs, features, strict=True)
                ]
                yield features

    def _seeds(self):
        return np.random.SeedSequence(self.seed).generate_state(self.samples)

    def _fix_samples(self, n: int, x: torch.Tensor, device, block_size, quiet, probe: bool = False) -> None:
        """Choose S (when not given) from a pilot: the larger of the count for ``target_error`` (with
        PILOT_MARGIN) and the count for rank (RANK_MARGIN n features), at most MAX_AUTO_SAMPLES.

        The pilot runs on at most PILOT_INPUTS evenly spaced rows of ``pilot_inputs`` when given, else on seeded
        Gaussian probes of ``x``'s shape (never on ``x``: module docstring). ``quiet`` or ``probe`` (``x`` is
        a probe from :meth:`estimate`): no announcement."""
        self._prepare(x)
        if self.samples is not None:
            return
        if self.pilot_inputs is not None:
            pilot = self.pilot_inputs.to(device)
            pilot = pilot[_spread(pilot.shape[0], PILOT_INPUTS)]
        else:
            pilot = gaussian_probe(PILOT_INPUTS, tuple(x.shape[1:])).to(device)
        seeds = np.random.SeedSequence([self.seed, PILOT_STREAM]).generate_state(PILOT_SAMPLES)
        sums = torch.zeros((2, pilot.shape[0], pilot.shape[0]), dtype=torch.float64, device=device)
        for (features,) in self._feature_batches([pilot], seeds, device, block_size, True):
            _add_draws(sums, features, features, self.width, *self._scale())
        mean, error = _entry_errors(sums, PILOT_SAMPLES)
        scale = float(mean.diagonal().mean())
        if not (math.isfinite(scale) and scale > 0.0):
            raise InputError(
                f"the random networks' outputs have mean square {scale} on the pilot inputs, so no kernel can be "
                "estimated from them; check the initialisation (init_fn) or give --kernel-samples"
            )
        spread = float(error.max()) * math.sqrt(PILOT_SAMPLES) / scale  # sd_s K_s, relative
        for_error = math.ceil((spread * PILOT_MARGIN / self.target_error) ** 2)
        for_rank = math.ceil(RANK_MARGIN * n / self.width)
        self.samples = max(2, min(MAX_AUTO_SAMPLES, max(for_error, for_rank)))
        self.sample_rule = {
            "rule": "auto",
            "target_error": self.target_error,
            "pilot_inputs": "gaussian probe" if self.pilot_inputs is None else int(pilot.shape[0]),
            "pilot_samples": PILOT_SAMPLES,
            "pilot_relative_sd": spread,
            "margin": PILOT_MARGIN,
            "for_error": for_error,
            "for_rank": for_rank,
            "cap": MAX_AUTO_SAMPLES,
            "expected_error": spread / math.sqrt(self.samples),
        }
        capped = (
            f"; the target is out of reach: about {spread / math.sqrt(self.samples):.2g} expected"
            if for_error > MAX_AUTO_SAMPLES
            else ""
        )
        announce(
            f"Monte Carlo NNGP ({self.estimator} estimator, {self.width} features per initialisation): "
            f"{self.samples} initialisations ({for_error} for an entry standard error of "
            f"{self.target_error:g} of the mean diagonal, {for_rank} for rank {RANK_MARGIN} x {n}, "
            f"at most {MAX_AUTO_SAMPLES}{capped})",
            quiet=quiet or probe,
        )

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s K_s(x_i, x_i) for every input: float64, shape (n,)."""
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x = as_inputs(x, device, "x")
        self._fix_samples(x.shape[0], x, device, block_size, quiet)
        total = torch.zeros(x.shape[0], dtype=torch.float64, device=device)
        for (features,) in self._feature_batches([x], self._seeds(), device, block_size, quiet):
            total += _draw_norms(features, self.width).sum(dim=1)
        a, b = self._scale()
        return total * (a / self.samples) + b

    def estimate(
        self, n1: int, n2=None, input_shape=None, *, inputs=None, device=None, block_size=None, test_points: int = 0
    ) -> tuple:
        """(seconds, peak bytes) of ``matrix`` on n1 x n2 inputs of ``input_shape`` (n2 None: symmetric), or with
        ``test_points`` of :meth:`train_and_test`'s pass on n1 and that many test inputs, from one timed batch of
        initialisations on at most 64 inputs (the first of ``inputs``, the inputs the kernel will be computed
        on, else seeded Gaussian probes) and timed matrix products for the feature products (n1^2 / 2 r per
        draw for K(x1, x1), which outgrows the forward passes at large n1) and for the rank diagnostic's
        eigenvalues of K(x1, x1) (:data:`SPECTRUM_MULTIPLY_ADDS` n1^3, once per pass); the automatic sample
        count is chosen as :meth:`matrix` chooses it (from ``pilot_inputs``, never from these)."""
        device = resolve_device(device)
        if inputs is not None:
            x = as_inputs(inputs, device, "inputs")
            return self._estimate(x, n1, n2, device, block_size, probe=False, test_points=test_points)
        if input_shape is None:
            raise InputError("estimate needs the inputs or the shape of one input; pass input_shape=(...)")
        probe = gaussian_probe(min(64, n1), tuple(input_shape))
        return self._estimate(probe.to(device), n1, n2, device, block_size, probe=True, test_points=test_points)

    def _estimate(self, x, n1, n2, device, block_size, probe, test_points: int = 0) -> tuple:
        block_size = check_block_size(block_size, self.default_block_size)
        self._fix_samples(n1, x, device, block_size, True, probe=probe)
        x = x[:64]
        batch = min(self.batch_size, self.samples)
        net, layers = self._network(device, x)
        seeds = np.random.SeedSequence(self.seed).generate_state(batch)
        started = time.perf_counter()
        params, buffers = ({k: v.to(device, self.dtype) for k, v in part.items()} for part in self._draw(seeds))
        projections = self._projections(seeds, device)
        per_draw = (time.perf_counter() - started) / batch  # once per initialisation, whatever the inputs
        forward = float("inf")
        for _ in range(2):  # the first pass also pays for warming up (allocations, kernel selection)
            begun = time.perf_counter()
            with torch.no_grad():
                features = self._features(net, layers, params, buffers, x, block_size, projections=projections)
            forward = min(forward, time.perf_counter() - begun)
        per_input_draw = forward / (x.shape[0] * batch)
        inputs = n1 + (0 if n2 is None else n2) + test_points
        entries = n1 * (n1 if n2 is None else n2) + (n1 + 1) * test_points  # K or K(x1, x2); the test kernels
        width = features.shape[1]  # batch x r: the features of one batch of initialisations, per input
        wide = 8 * n1 * width if features.dtype != torch.float64 else 0  # x1's features in float64
        peak = 8 * entries * (3 if self.entry_errors else 1) + features.element_size() * inputs * width + wide
        gram = lower_gram_entries(n1) if n2 is None else 0  # K(x1, x1)'s product, in float64
        cross = n1 * ((n2 or 0) + test_points)  # K(x1, x2) or K(x1, x_test), in the features' dtype
        per_product = gram * _multiply_add_seconds(torch.float64, device) + cross * _multiply_add_seconds(
            features.dtype, device
        )
        spectrum = (
            SPECTRUM_MULTIPLY_ADDS * float(n1) ** 3 * _multiply_add_seconds(torch.float64, device) if n2 is None else 0
        )
        return (per_draw + per_input_draw * inputs + per_product * self.width) * self.samples + spectrum, peak

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """(1/S) sum_s K_s(x1, x2): float64 (n1, n2) on ``device``; ``x2=None``: K(x1, x1).

        ``block_size``: inputs per forward pass (fewer when the model's activations need it). Memory: the
        result plus (n1 + n2) x batch_size x r features in the forward dtype, n1 x batch_size x r more in float64
        after float32 forwards (and two more n1 x n2 matrices when ``entry_errors``).
        """
        kernel, cross, _ = self._pass(x1, x2, x2 is None, device, block_size, quiet)
        return kernel if x2 is None else cross

    def train_and_test(self, x, x_test, *, device=None, block_size=None, quiet=True) -> tuple:
        """(K(x, x), K(x, x_test), the diagonal of K(x_test, x_test)) from one pass of the draws over x and
        x_test: each equals what ``matrix(x)``, ``matrix(x, x_test)`` and ``diagonal(x_test)`` return, at the
        cost of one. ``diagnostics`` describe K(x, x) (as after ``matrix(x)``)."""
        if x_test is None:
            raise InputError("train_and_test needs test inputs; use matrix(x) for K(x, x) alone")
        return self._pass(x, x_test, True, device, block_size, quiet)

    def _pass(self, x1, x2, symmetric: bool, device, block_size, quiet) -> tuple:
        """One pass of the draws: (K(x1, x1) if ``symmetric``, K(x1, x2) if x2 is given, the diagonal of
        K(x2, x2) if both), None for what is not asked; ``diagnostics`` of the first of them."""
        device = resolve_device(device)
        block_size = check_block_size(block_size, self.default_block_size)
        x1 = as_inputs(x1, device, "x1")
        inputs = [x1] if x2 is None else [x1, as_inputs(x2, device, "x2")]
        n1, n2 = x1.shape[0], inputs[-1].shape[0]
        entries = n1 * n1 * symmetric + (0 if x2 is None else n1 * n2)
        check_fits(entries * 8 * (3 if self.entry_errors else 1), device, f"the {n1} x {n2} Monte Carlo kernel")
        self._fix_samples(n1, x1, device, block_size, quiet)
        if not quiet and self.samples * (n1 + (0 if x2 is None else n2)) >= ANNOUNCE_WORK:
            tests = n2 if symmetric and x2 is not None else 0  # train_and_test's pass
            seconds, peak = self._estimate(
                x1, n1, None if symmetric else n2, device, block_size, probe=False, test_points=tests
            )
            announce(
                f"Monte Carlo NNGP {n1} x {n2}, {self.samples} samples: about {seconds:.0f} s, "
                f"peak memory {format_bytes(peak)} plus the model's activations"
            )
        reported = 0 if symmetric else 1  # which inputs the diagnostics' columns are
        wide = None  # x1's features in float64, for the exact Gram matrix (and the logits' products)
        columns_n = inputs[reported].shape[0]
        rows, columns = _spread(n1), _spread(columns_n)
        gram = torch.zeros((n1, n1), dtype=torch.float64, device=device) if symmetric else None
        cross = None if x2 is None else torch.zeros((n1, n2), dtype=torch.float64, device=device)
        test_diagonal = torch.zeros(n2, dtype=torch.float64, device=device) if symmetric and x2 is not None else None
        full = torch.zeros((2, n1, columns_n), dtype=torch.float64, device=device) if self.entry_errors else None
        sampled = torch.zeros((2, len(rows), len(columns)), dtype=torch.float64, device=device)
        moments = torch.zeros((2, n1 + (0 if symmetric else n2)), dtype=torch.float64, device=device)
        logit_products = None
        for features in self._feature_batches(inputs, self._seeds(), device, block_size, quiet):
            f1, f2 = features[0], features[-1]
            a, b = self._scale()
            if gram is not None or self.readout is None:
                wide = _float64(f1, wide)
            if gram is not None:
                _add_lower_gram(gram, wide)
            if cross is not None:
                _add_cross(cross, f1, f2)
            g1 = f1 if wide is None else wide  # float64 when converted already: K's diagonal, exactly
            norms = [_draw_norms(f, self.width) for f in (g1, *features[1:])]  # (n, draws) F_s(x) . F_s(x)
            if test_diagonal is not None:
                test_diagonal += norms[-1].sum(dim=1)
            g2 = g1 if reported == 0 else f2
            _add_draws(sampled, g1[rows], g2[columns], self.width, a, b)
            if full is not None:
                _add_draws(full, g1, g2, self.width, a, b)
            diagonal = (norms[0] if symmetric else torch.cat(norms)) * a + b
            moments[0] += diagonal.sum(dim=1)
            moments[1] += diagonal.square().sum(dim=1)
            if self.readout is None:
                per_logit = wide.reshape(n1, -1, self.logits)  # (n, draws, C)
                products = torch.einsum("nsc,nsd->cd", per_logit, per_logit)
                logit_products = products if logit_products is None else logit_products + products
        if gram is not None:
            mirror_lower(gram, GRAM_ROWS)
        results = tuple(None if k is None else k.mul_(a / self.samples).add_(b) for k in (gram, cross, test_diagonal))
        self._summarise(results[0] if symmetric else results[1], moments / self.samples, sampled, full, symmetric)
        if logit_products is not None:
            self._cross_logit(logit_products)
        return results

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
            "projection": self.projected,
            "projection_reason": self.projection_reason,
            "evaluation": self.evaluation,
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


class _Captured(Exception):
    """Stops a forward pass once the read-out's input is captured."""


def gaussian_probe(n: int, input_shape: tuple) -> torch.Tensor:
    """n seeded standard Gaussian inputs of ``input_shape`` (float64): data-free inputs for a pilot or a timing."""
    return torch.randn((n, *input_shape), generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _spread(n: int, most: int = ERROR_INPUTS) -> torch.Tensor:
    """At most ``most`` evenly spaced indices of n inputs (all of them when n is small)."""
    return torch.linspace(0, n - 1, min(n, most)).round().long().unique()


def _draw_norms(features: torch.Tensor, width: int) -> torch.Tensor:
    """F_s(x) . F_s(x) of every input and initialisation: (n, draws) float64 from features (n, draws * width)
    (each dot product in the features' dtype)."""
    per_draw = features.reshape(features.shape[0], -1, width)
    return torch.einsum("nbr,nbr->nb", per_draw, per_draw).double()  # a batched dot: no (n, draws * width) temporary


def _float64(features: torch.Tensor, buffer) -> torch.Tensor:
    """``features`` in float64: themselves when they are, else copied into ``buffer`` (reused when its shape
    matches, so each batch of initialisations writes the same array)."""
    if features.dtype == torch.float64:
        return features
    if buffer is None or buffer.shape != features.shape:
        return features.to(torch.float64)
    return buffer.copy_(features)


def _add_lower_gram(gram: torch.Tensor, features: torch.Tensor) -> None:
    """Add F F^T to the lower block triangle of ``gram`` (its rows in blocks of GRAM_ROWS, each against every
    row up to the block's end): about half the flops of the full product; the entries above the diagonal
    blocks are left as they are, for :func:`pacbayes.kernels._blocks.mirror_lower` to fill in."""
    n = gram.shape[0]
    for start in range(0, n, GRAM_ROWS):
        end = min(n, start + GRAM_ROWS)
        gram[start:end, :end].addmm_(features[start:end], features[:end].T)


def _multiply_add_seconds(dtype, device) -> float:
    """Seconds per multiply-add of a matrix product as the kernel's products run (GRAM_ROWS rows against
    4 GRAM_ROWS, 2,048 deep, in ``dtype`` on ``device``; :func:`pacbayes.estimates.seconds_per_multiply_add`)."""
    return seconds_per_multiply_add(dtype, device, (GRAM_ROWS, 4 * GRAM_ROWS, 2048))


def lower_gram_entries(n: int) -> int:
    """Entries of an n x n Gram matrix that :func:`_add_lower_gram` computes (its lower block triangle)."""
    return sum(min(GRAM_ROWS, n - start) * min(n, start + GRAM_ROWS) for start in range(0, n, GRAM_ROWS))


def _add_cross(cross: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor) -> None:
    """Add F1 F2^T to the float64 ``cross``, the product in the features' dtype. After float32 forwards it runs
    in float32 on the forwards' own outputs (half the time of the float64 product, and no conversion; relative
    error about 1e-6, far inside the sampling error): unlike K(x, x), whose exact Gram form keeps the prior
    positive semi-definite, the cross kernel only feeds Q*'s predictions."""
    if f1.dtype == torch.float64:
        cross.addmm_(f1, f2.T)
    else:
        cross += f1 @ f2.T


def _add_draws(sums: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, width: int, a: float, b: float) -> None:
    """Add sum_s K_s and sum_s K_s^2 (entrywise) over the initialisations in f1 (n1, draws r), f2 (n2, draws r)
    to ``sums`` (2, n1, n2), with K_s = a F_s F_s^T + b (in float64)."""
    g1, g2 = (f.to(torch.float64).reshape(f.shape[0], -1, width) for f in (f1, f2))
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
