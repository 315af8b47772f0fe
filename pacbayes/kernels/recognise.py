"""Which analytic NNGP kernel a torch model's initialisation prior has, or why it has none.

:func:`analytic_kernel_or_reason` traces the model, whatever its file kind (nn.Module of any class,
TorchScript, torch.export program), with :func:`pacbayes.models.programs.as_program`, and compiles the
graph with :mod:`pacbayes.kernels.compiler`. The result is a :class:`~pacbayes.kernels.compiled.CompiledNNGP`
whose ``kind`` is "nngp-fc" for a chain Linear (activation Linear)* with one activation of the analytic
builders (:data:`pacbayes.activations.ANALYTIC_ACTIVATIONS`: relu, erf or none) and one sigma_w,
"nngp-cnn" for (Conv2d ReLU)+ [global mean] Flatten Linear with one sigma_w (the two classic families,
described with their legacy fields), else "nngp-graph". When sigma_w / sigma_b are
not given they are those of PyTorch's default init (see :mod:`pacbayes.kernels.compiler`). The kernel is
the infinite-width limit of that initialisation; PyTorch's weights are uniform rather than Gaussian, so a
finite net also differs by the central-limit error of the first layer's fan-in (except for linear nets).
"""

import torch

from pacbayes.activations import ANALYTIC_ACTIVATIONS, LINEAR
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.kernels._blocks import describe_sigma_b
from pacbayes.kernels.compiled import CompiledNNGP, Graph, Preprocess
from pacbayes.kernels.compiler import compile_program
from pacbayes.kernels.rules import Activation, Conv, Dense, Flatten, GlobalMean, Identity
from pacbayes.models.programs import as_program


class _Classic(CompiledNNGP):
    """A compiled kernel of one of the classic families, with their describe() fields."""

    def __init__(self, graph: Graph, source: str, kind: str, fields: dict):
        super().__init__(graph, source)
        self.kind = kind
        self.fields = fields

    def describe(self) -> dict:
        record = super().describe()
        return {"kind": self.kind, **self.fields, **{k: v for k, v in record.items() if k != "kind"}}


def _chain(graph: Graph) -> list | None:
    """The rules of a graph that is a single chain, without identities and leading reshapes; else None."""
    rules, previous = [], graph.nodes[0].name
    for node in graph.nodes[1:]:
        if node.inputs != (previous,):
            return None
        previous = node.name
        if isinstance(node.rule, Identity) or (node.raw and isinstance(node.rule, Preprocess) and not rules):
            if node.raw and node.rule.label not in ("view", "reshape", "_unsafe_view", "flatten"):
                return None
            continue
        rules.append(node.rule)
    return rules


def _classify(graph: Graph) -> tuple:
    """("nngp-fc" | "nngp-cnn" | "nngp-graph", legacy describe fields)."""
    rules = _chain(graph)
    if not rules:
        return "nngp-graph", {}
    weighted = [r for r in rules if isinstance(r, (Dense, Conv))]
    if len({r.sigma_w for r in weighted}) != 1:
        return "nngp-graph", {}
    sigma_b = describe_sigma_b(tuple(r.sigma_b for r in weighted))
    activations = {r.dual.name for r in rules if isinstance(r, Activation)}
    if all(isinstance(r, (Dense, Activation)) for r in rules) and isinstance(rules[0], Dense):
        pattern = all(
            isinstance(r, Dense) or (isinstance(nxt, Dense) and isinstance(prev, Dense))
            for prev, r, nxt in zip([None, *rules], rules, [*rules[1:], None], strict=False)
        )
        kinds = activations or {LINEAR}
        if pattern and len(kinds) == 1 and kinds <= set(ANALYTIC_ACTIVATIONS) and len(weighted) > 1:
            fields = {"depth": len(weighted) - 1, "activation": kinds.pop(), "sigma_w": weighted[0].sigma_w}
            return "nngp-fc", {**fields, "sigma_b": sigma_b}
    body, pooling = list(rules[:-1]), "flatten"
    if body and isinstance(body[-1], Flatten):
        body = body[:-1]
    if body and isinstance(body[-1], GlobalMean):
        body, pooling = body[:-1], "gap"
    pairs = list(zip(body[::2], body[1::2], strict=False))
    if (
        body
        and len(body) % 2 == 0
        and isinstance(rules[-1], Dense)
        and (pooling == "gap" or isinstance(rules[-2], Flatten))
        and all(isinstance(c, Conv) and c.d == 2 and isinstance(a, Activation) for c, a in pairs)
        and activations == {"relu"}
        and all(c.dilation == (1, 1) and all(lo == hi for lo, hi in c.padding) for c, _ in pairs)
    ):
        conv_layers = [
            [c.channels[1], list(c.kernel_size), list(c.stride), [lo for lo, _ in c.padding]] for c, _ in pairs
        ]
        fields = {"depth": len(pairs), "activation": "relu", "sigma_w": weighted[0].sigma_w, "sigma_b": sigma_b}
        return "nngp-cnn", {**fields, "pooling": pooling, "conv_layers": conv_layers}
    return "nngp-graph", {}


def analytic_kernel_or_reason(module: torch.nn.Module, input_shape, sigma_w=None, sigma_b=None) -> tuple:
    """(kernel, "") with the analytic NNGP kernel of ``module``'s initialisation prior, or (None, reason).

    ``input_shape``: the shape of one input, without the batch dimension. ``reason`` is one line naming
    what has no NNGP rule (e.g. "aten.max_pool2d has no NNGP rule") or why the model could not be traced.
    ``sigma_w`` / ``sigma_b``: a number for every weighted layer, or one per weighted layer in the order of
    the computation; None: PyTorch's default init.
    """
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    shape = tuple(int(v) for v in input_shape)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    example = torch.zeros((2, *shape), dtype=dtype)
    try:
        program, source = as_program(module, example)
    except ModelLoadError as err:
        return None, str(err)
    graph, reason = compile_program(program, shape, sigma_w, sigma_b)
    if graph is None:
        return None, reason
    kind, fields = _classify(graph)
    if kind == "nngp-graph":
        return CompiledNNGP(graph, source), ""
    return _Classic(graph, source, kind, fields), ""


def nngp_for_module(module: torch.nn.Module, input_shape, sigma_w=None, sigma_b=None):
    """The analytic NNGP kernel of ``module``'s initialisation prior, or None (see
    :func:`analytic_kernel_or_reason`, which also says why not)."""
    return analytic_kernel_or_reason(module, input_shape, sigma_w, sigma_b)[0]
