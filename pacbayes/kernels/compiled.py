"""A compiled NNGP kernel: a graph of layer rules (:mod:`pacbayes.kernels.rules`) evaluated tile by tile.

A :class:`Graph` lists :class:`Node` s in topological order. Nodes marked ``raw`` depend on the input only
(no random weight yet): they are deterministic preprocessing, run on the data itself. The first weighted
layers read the raw data (:meth:`Dense.from_features`, :meth:`Conv.from_features`); every later node transforms
covariances by its rule's ``kernel`` (:class:`~pacbayes.kernels.protocol.Rule`, whatever the rule's type).
:meth:`CompiledNNGP.matrix` first runs the graph on the pairs (x_i, x_i) (the variances every
activation needs, and the diagonal), then on each (a, b) tile of inputs; nodes whose consumers need every
pair of positions (average pooling, global means) keep the full layout, the rest only p = p'.

The kernel is that of one output logit; a read-out with C outputs has C iid logits with this kernel.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from pacbayes.device import resolve_device
from pacbayes.errors import InputError
from pacbayes.kernels._blocks import as_inputs, check_block_size, fill_kernel
from pacbayes.kernels.protocol import Covariance
from pacbayes.kernels.rules import Conv
from pacbayes.memory import check_fits, format_bytes
from pacbayes.progress import announce

TILE_ELEMENTS = 2**22  # float64 entries in one tile's largest covariance (32 MiB) when block_size is None
_TEMPORARIES = 4  # tile-sized buffers alive at once (covariance, activation temporaries)
ANNOUNCE_PAIRS = 2**20  # estimate and announce before computing at least this many entries


@dataclass(frozen=True)
class Preprocess:
    """A deterministic operation on the input before any weighted layer (reshapes, scaling, ...): run on the
    data, so it has no kernel; its consumers read the data it computes."""

    needs_full_spatial: ClassVar[bool] = False
    uses_variances: ClassVar[bool] = False
    fn: Callable[[torch.Tensor], torch.Tensor]
    label: str

    def forward(self, x):
        return self.fn(x)

    def describe(self) -> str:
        return self.label


@dataclass
class Node:
    """One operation: ``rule`` applied to the outputs of ``inputs``. ``d``: spatial axes of its output;
    ``raw``: a function of the input alone; ``full``: its covariance keeps every pair of positions."""

    name: str
    rule: object
    inputs: tuple
    d: int
    raw: bool = False
    full: bool = False


@dataclass
class Graph:
    """Nodes in topological order (the first is the input placeholder, rule None) and the output's name."""

    nodes: list
    output: str
    input_shape: tuple | None = None
    outputs: int = 1

    def __post_init__(self):
        self.by_name = {node.name: node for node in self.nodes}
        consumers: dict = {node.name: [] for node in self.nodes}
        for node in self.nodes:
            for name in node.inputs:
                consumers[name].append(node)
        for node in reversed(self.nodes):  # a node keeps every pair of positions if a consumer needs them
            node.full = node.d > 0 and any(self.needs_full(c) for c in consumers[node.name])
        self.uses = {name: len(nodes) for name, nodes in consumers.items()}
        self.uses[self.output] += 1

    @staticmethod
    def needs_full(consumer: Node) -> bool:
        """Whether ``consumer`` reads every pair of positions of its inputs: pooling rules always, the others
        when their own output keeps them (they map each layout to itself)."""
        return consumer.rule.needs_full_spatial or consumer.full

    def layers(self) -> list:
        """One string per non-input node, e.g. "linear(784->256, sw=0.577, sb=0.0206)", "relu"."""
        names = {node.name: i for i, node in enumerate(n for n in self.nodes if n.rule is not None)}
        described = []
        for node in self.nodes:
            if node.rule is None:
                continue
            text = node.rule.describe()
            if len(node.inputs) > 1:
                text += "(" + " + ".join(f"#{names[i]}" if i in names else "input" for i in node.inputs) + ")"
            described.append(text)
        return described


class CompiledNNGP:
    """The NNGP kernel of one output logit of the network described by ``graph`` (see the module docstring).

    ``kind``: "nngp-fc" / "nngp-cnn" for the two classic families (set by their subclasses), "nngp-graph"
    for any other compiled network. ``describe()`` lists the layer chain and the number of outputs.
    """

    selection = ""  # why a run chose this kernel (set by the marginal family), else empty
    kind = "nngp-graph"

    def __init__(self, graph: Graph, source: str | None = None):
        self.graph = graph
        self.source = source

    # ----------------------------------------------------------------- description
    @property
    def outputs(self) -> int:
        return self.graph.outputs

    def summary(self) -> str:
        """One line for the report table: the layer chain, short, and the number of logits."""
        short = [layer.split("(")[0] for layer in self.graph.layers()]
        chain = " > ".join(short)
        logits = "1 logit" if self.outputs == 1 else f"{self.outputs} iid logits"
        return f"analytic NNGP ({chain}; {logits})"

    def describe(self) -> dict:
        record = {
            "kind": self.kind,
            "layers": self.graph.layers(),
            "outputs": self.outputs,
            "summary": self.summary(),
        }
        if self.graph.input_shape is not None:
            record["input_shape"] = list(self.graph.input_shape)
        if self.source is not None:
            record["source"] = self.source
        return record

    @property
    def diagnostics(self) -> dict:
        """Nothing to report: the analytic kernel is exact (see :class:`~pacbayes.kernels.protocol.NNGPKernel`)."""
        return {}

    # ----------------------------------------------------------------- inputs
    def _inputs(self, x, device, name) -> torch.Tensor:
        x = as_inputs(x, device, name)
        shape = self.graph.input_shape
        if shape is not None:
            if tuple(x.shape[1:]) != shape and x[0].numel() == math.prod(shape):
                x = x.reshape(x.shape[0], *shape)
            if tuple(x.shape[1:]) != shape:
                raise InputError(
                    f"{name} has inputs of shape {tuple(x.shape[1:])} but the kernel was built for {shape}"
                )
        first = next((n for n in self.graph.nodes if isinstance(n.rule, Conv)), None)
        if first is not None and first.inputs == (self.graph.nodes[0].name,) and x.dim() != 2 + first.rule.d:
            letters = "length" if first.rule.d == 1 else "height, width"
            raise InputError(f"{name} must have shape (n, channels, {letters}), got {tuple(x.shape)}")
        return x

    def _preprocess(self, x: torch.Tensor) -> dict:
        """For every weighted node reading the raw data: its features of ``x`` (rows = inputs), computed once
        for all tiles after running the raw (preprocessing) nodes on ``x``."""
        values = {self.graph.nodes[0].name: x}
        features = {}
        for node in self.graph.nodes[1:]:
            if node.raw:
                values[node.name] = node.rule.forward(*(values[i] for i in node.inputs))
            elif node.inputs[0] in values:  # a first weighted layer (the compiler lets only those read the data)
                features[node.name] = node.rule.features(values[node.inputs[0]], node.full)
        return features

    # ----------------------------------------------------------------- evaluation
    def _run(
        self, raw1: dict, raw2: dict | None, var1: dict | None, var2: dict | None, record=None, watch=None
    ) -> torch.Tensor:
        """The output covariance of a tile (raw2 given: (a, b)) or of the pairs (x_i, x_i) (raw2 None: (n,)).

        ``var1``/``var2``: per node whose rule ``uses_variances``, the per-position input variances of the tile's
        rows / columns (a, *S) / (b, *S); for pairs they are read off the covariance and passed to
        ``record(name, var)``. ``watch(out)`` sees every node's output covariance."""
        graph, values = self.graph, {}
        left = dict(graph.uses)
        grid = raw2 is not None

        def take(name: str, consumer: Node) -> Covariance:
            value = values[name]
            left[name] -= 1
            if left[name] == 0:
                del values[name]
            else:
                value = value.clone()
            return value if graph.needs_full(consumer) else value.diagonal()

        for node in graph.nodes:
            rule = node.rule
            if node.raw or rule is None:
                continue
            if graph.by_name[node.inputs[0]].raw:  # a first weighted layer, from the data's features
                tensor = rule.from_features(raw1[node.name], raw2[node.name] if grid else None, node.full)
                out = Covariance(tensor, node.d, node.full, pairs=not grid)
                for name in node.inputs:
                    left[name] -= 1
            else:
                inputs = [take(name, node) for name in node.inputs]
                if rule.uses_variances:
                    inputs[0].marginals = self._marginals(node.name, inputs[0], var1, var2, record)
                out = rule.kernel(*inputs)
                if out.full and not node.full:  # pooling gives every pair; no consumer needs them
                    out = out.diagonal()
            if watch is not None:
                watch(out.tensor)
            values[node.name] = out
        return values[graph.output].tensor

    @staticmethod
    def _marginals(name: str, cov: Covariance, var1, var2, record) -> tuple:
        """The row and column variances a rule reads: stored for a tile, the pairs' own (recorded) for pairs."""
        if not cov.pairs:
            return var1[name], var2[name]
        var = cov.own_variances()
        if record is not None:
            record(name, var)
        return var, var

    def _pairs(self, raw: dict, rows: int) -> tuple:
        """(diagonal (n,), {activation node: per-position variances (n, *S)}), in chunks of ``rows`` inputs."""
        n = next(iter(raw.values())).shape[0]
        diagonal, variances = [], {}

        def record(name, var):
            variances.setdefault(name, []).append(var)

        for start in range(0, n, rows):
            chunk = {k: v[start : start + rows] for k, v in raw.items()}
            diagonal.append(self._run(chunk, None, None, None, record))
        return torch.cat(diagonal), {k: torch.cat(v) for k, v in variances.items()}

    def _per_pair(self, raw: dict) -> int:
        """Float64 entries of the largest covariance of one pair of inputs (from a run on one input)."""
        largest = [1]
        self._run({k: v[:1] for k, v in raw.items()}, None, None, None, watch=lambda out: largest.append(out.numel()))
        return max(largest)

    def _block_size(self, per_pair: int, block_size) -> int:
        return check_block_size(block_size, max(1, math.isqrt(TILE_ELEMENTS // per_pair)))

    def memory_bytes(self, n1: int, n2: int, per_pair: int, block: int) -> int:
        """Peak bytes of a matrix call: the result, the tile temporaries, the stored variances and inputs."""
        block1, block2 = min(block, n1), min(block, n2)
        activations = sum(n.rule is not None and n.rule.uses_variances for n in self.graph.nodes)
        return 8 * (n1 * n2 + _TEMPORARIES * block1 * block2 * per_pair + activations * (n1 + n2) * per_pair)

    def estimate(self, n1: int, n2: int | None = None, input_shape=None, *, device=None) -> tuple:
        """(seconds, peak bytes) of ``matrix`` on n1 x n2 inputs (n2 None: the symmetric n1 x n1), from a
        timed tile of up to 64 x 64 seeded random inputs of ``input_shape`` (default: the shape the kernel was
        built for)."""
        shape = self.graph.input_shape if input_shape is None else tuple(input_shape)
        if shape is None:
            raise InputError("estimate needs the shape of one input; pass input_shape=(channels, height, width)")
        device = resolve_device(device)
        generator = torch.Generator().manual_seed(0)
        probe = torch.randn((8, *shape), dtype=torch.float64, generator=generator).to(device)
        return self._estimate(self._preprocess(self._inputs(probe, device, "probe")), n1, n2, None)

    def _estimate(self, raw: dict, n1: int, n2: int | None, block_size) -> tuple:
        symmetric = n2 is None
        n2 = n1 if symmetric else n2
        per_pair = self._per_pair(raw)
        block = self._block_size(per_pair, block_size)
        # time one tile as matrix() would run it (up to 64 x 64 inputs: large enough to amortise overheads)
        rows = min(block, 64)
        x = next(iter(raw.values()))
        reps = -(-rows // x.shape[0])
        probe = {k: v.repeat(reps, *([1] * (v.dim() - 1)))[:rows] for k, v in raw.items()}
        _, variances = self._pairs(probe, rows)
        started = time.perf_counter()
        self._run(probe, probe, variances, variances)
        per_entry = (time.perf_counter() - started) / (rows * rows)
        entries = n1 * (n1 + 1) / 2 if symmetric else n1 * n2
        return per_entry * entries, self.memory_bytes(n1, n2, per_pair, block)

    def diagonal(self, x, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """K(x_i, x_i) for every row of ``x``: float64, shape (n,) (one pass; no tiles, no progress)."""
        device = resolve_device(device)
        raw = self._preprocess(self._inputs(x, device, "x"))
        per_pair = self._per_pair(raw)
        return self._pairs(raw, max(1, TILE_ELEMENTS // per_pair))[0]

    def matrix(self, x1, x2=None, *, device=None, block_size=None, quiet=True) -> torch.Tensor:
        """The (n1, n2) float64 kernel matrix on ``device``; ``x2=None`` gives K(x1, x1).

        Tiles of ``block_size`` inputs square, by default sized so that a tile's largest covariance holds
        about 4M float64 entries. Refuses (InputError) what cannot fit in the device's free memory; unless
        ``quiet``, announces the estimated time and memory of large kernels first.
        """
        device = resolve_device(device)
        x1 = self._inputs(x1, device, "x1")
        x2 = x1 if x2 is None else self._inputs(x2, device, "x2")
        if x2.shape[1:] != x1.shape[1:]:
            raise InputError(
                f"x1 has inputs of shape {tuple(x1.shape[1:])} but x2 has "
                f"{tuple(x2.shape[1:])}; both must come from the same input space"
            )
        symmetric = x2 is x1
        n1, n2 = x1.shape[0], x2.shape[0]
        raw1 = self._preprocess(x1)
        raw2 = raw1 if symmetric else self._preprocess(x2)
        per_pair = self._per_pair(raw1)
        block = self._block_size(per_pair, block_size)
        check_fits(self.memory_bytes(n1, n2, per_pair, block), device, f"the {n1} x {n2} {self.kind} kernel")
        if not quiet and n1 * n2 >= ANNOUNCE_PAIRS:
            seconds, peak = self._estimate(raw1, n1, None if symmetric else n2, block_size)
            announce(f"{self.kind} kernel {n1} x {n2}: about {seconds:.0f} s, peak memory {format_bytes(peak)}")
        rows = max(1, TILE_ELEMENTS // per_pair)
        diag1, var1 = self._pairs(raw1, rows)
        var2 = var1 if symmetric else self._pairs(raw2, rows)[1]

        def tile(r, c):
            return self._run(
                {k: v[r] for k, v in raw1.items()},
                {k: v[c] for k, v in raw2.items()},
                {k: v[r] for k, v in var1.items()},
                {k: v[c] for k, v in var2.items()},
            )

        return fill_kernel(
            n1,
            n2,
            tile,
            symmetric=symmetric,
            block_size=block,
            device=device,
            quiet=quiet,
            desc=f"{self.kind} NNGP",
            diagonal=diag1 if symmetric else None,
        )
