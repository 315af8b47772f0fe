"""The NNGP compiler: a traced model's ATen graph -> a :class:`~pacbayes.kernels.compiled.Graph` of layer rules.

Every file kind becomes one torch.export program (:func:`pacbayes.models.programs.as_program`), whose
graph is a list of ATen calls. Each call is mapped to its rule in :mod:`pacbayes.kernels.rules` by the
table :data:`OP_RULES` (ATen operation -> handler):

- linear -> Dense; conv1d / conv2d / convolution -> Conv (zero padding, integers or "same"/"valid",
  stride, dilation; groups 1);
- each activation of the table :data:`pacbayes.activations.ACTIVATIONS` (closed forms or quadrature) -> Activation;
- flatten / view / reshape to (n, features) -> Flatten; avg_pool1d/2d -> AvgPool; adaptive_avg_pool to
  size 1 and mean over the spatial axes -> GlobalMean;
- dropout (eval), clone, contiguous, detach, alias, dtype casts -> Identity; multiplication or division
  by a constant -> Scale;
- add of two branches -> Add, when they are uncorrelated: one branch must end in a weighted layer (through
  shape-only or linear ops) whose weights the other branch does not depend on; Cov(a, W h + b) = 0 then,
  since W and b are zero-mean and independent of a;
- any call before the first weighted layer that depends on the input alone is preprocessing, run on the data.

Anything else has no rule, and the reason names the operation. Weights must not be shared between two
calls, and the output must be zero-mean (a weighted layer, possibly followed by odd activations, pooling,
shape or linear ops) with no spatial axes. sigma_w and sigma_b default to PyTorch's initialisation read
from each weight: Var(W) = 1 / (3 fan_in), i.e. sigma_w^2 = 1/3, and sigma_b^2 = 1 / (3 fan_in) (0 without
bias). The compiled graph's forward rules are run with the model's own weights on a probe input and must
reproduce the model's outputs, which checks the parse.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real

import torch

from pacbayes import seeds
from pacbayes.errors import InputError
from pacbayes.kernels._blocks import check_sigma_b, check_sigma_w
from pacbayes.kernels.compiled import Graph, Node, Preprocess
from pacbayes.kernels.duals import ACTIVATION_OPS, dual_for_op
from pacbayes.kernels.rules import Activation, Add, AvgPool, Conv, Dense, Flatten, GlobalMean, Identity, Scale
from pacbayes.layers import ATEN_CONVOLUTIONS, ATEN_LINEAR
from pacbayes.models.programs import ExportedModel

DEFAULT_SIGMA_W = math.sqrt(1.0 / 3.0)

aten = torch.ops.aten
_IDENTITIES = {
    aten.clone.default,
    aten.contiguous.default,
    aten.detach.default,
    aten.alias.default,
    aten.lift_fresh_copy.default,
    aten._to_copy.default,
    aten.to.dtype,
}
_DROPOUTS = {aten.dropout.default, aten.feature_dropout.default, aten.alpha_dropout.default}
_RESHAPES = {aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints}
_SCALES = {aten.mul.Tensor: False, aten.mul.Scalar: False, aten.div.Tensor: True, aten.div.Scalar: True}


class Unsupported(Exception):
    """The model has no NNGP rule; the message says which operation and why."""


@dataclass
class _Info:
    """What the compiler knows about one value: its node, shape (without batch), whether it is raw
    (input only), zero-mean, the weighted node it freshly comes from, and the weighted nodes above it."""

    node: Node | None
    shape: tuple
    raw: bool
    zero_mean: bool = True
    fresh: str | None = None
    above: frozenset = field(default_factory=frozenset)


def _op_name(target) -> str:
    return str(getattr(target, "__name__", target)).split(".")[0]


def _static_shape(fx_node) -> tuple:
    """The shape of one example of a node's value (its traced shape without the batch axis)."""
    value = fx_node.meta.get("val")
    if not isinstance(value, torch.Tensor):
        raise Unsupported(f"{_op_name(fx_node.target)} does not produce a tensor")
    try:
        return tuple(int(v) for v in value.shape[1:])
    except (TypeError, ValueError, RuntimeError):
        raise Unsupported(f"{_op_name(fx_node.target)} has a data-dependent shape {tuple(value.shape)}") from None


def _pair_list(value, d: int) -> tuple:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return tuple(int(v) for v in (values * d if len(values) == 1 else values))


@dataclass(frozen=True)
class Call:
    """One ATen call being compiled: its fx node, arguments (an _Info for a computed value, else the constant),
    the shape of its output (without the batch axis) and the operation's short name."""

    fx_node: torch.fx.Node
    args: list
    kwargs: dict
    shape: tuple
    op: str

    @property
    def x(self) -> _Info:
        """The computed value the call acts on (its first argument)."""
        if not isinstance(self.args[0], _Info):
            raise Unsupported(f"{self.op} with a constant first argument has no NNGP rule")
        return self.args[0]

    @property
    def keep(self) -> dict:
        """The flags of an output that is a linear, weight-free function of ``x``: zero-mean if x is, and as
        fresh (straight from a weighted layer) as x."""
        return {"zero_mean": self.x.zero_mean, "fresh": self.x.fresh}


def unary(make: Callable[[Call], object], linear: bool = True) -> Callable:
    """The handler of an operation whose weight-free rule ``make(call)`` acts on its first argument alone: the one
    line a new rule of that kind needs in :data:`OP_RULES`. ``linear``: the output keeps the input's zero mean
    and freshness (else it is taken to be neither)."""

    def handler(compiler: "_Compiler", call: Call) -> None:
        x = call.x
        compiler.add_rule(call, make(call), [x], **(call.keep if linear else {"zero_mean": False}))

    return handler


class _Compiler:
    def __init__(self, program, input_shape, sigma_w, sigma_b):
        self.program = program
        self.signature = program.graph_signature
        self.input_shape = tuple(int(v) for v in input_shape)
        self.sigma_w, self.sigma_b = sigma_w, sigma_b
        self.tensors = {}
        for placeholder, name in self.signature.inputs_to_parameters.items():
            self.tensors[placeholder] = program.state_dict[name]
        for placeholder, name in self.signature.inputs_to_buffers.items():
            self.tensors[placeholder] = program.state_dict.get(name, program.constants.get(name))
        for placeholder, name in getattr(self.signature, "inputs_to_lifted_tensor_constants", {}).items():
            self.tensors[placeholder] = program.constants[name]
        # TorchScript files converted to programs may hold their weights as buffers: both count as weights
        self.param_names = {**self.signature.inputs_to_parameters, **self.signature.inputs_to_buffers}
        self.info: dict = {}
        self.symbols: set = set()  # nodes computing sizes (sym_size), not tensors
        self.nodes: list = []
        self.weights: dict = {}  # node name -> (weight, bias) tensors, for the forward check
        self.weighted = 0
        self.used_params: dict = {}

    # ------------------------------------------------------------------ helpers
    def _sigmas(self, fan_in: int, bias) -> tuple:
        """(sigma_w, sigma_b) of the next weighted layer: the user's (a number, or one per weighted layer in
        graph order) or PyTorch's default init (sigma_w^2 = 1/3, sigma_b^2 = 1 / (3 fan_in), 0 without bias)."""
        index = self.weighted
        self.weighted += 1
        values = []
        for given, default in ((self.sigma_w, DEFAULT_SIGMA_W), (self.sigma_b, math.sqrt(1.0 / (3.0 * fan_in)))):
            if given is None or isinstance(given, Real):
                value = default if given is None else given
            else:
                given = list(given)
                if index >= len(given):
                    raise InputError(f"{len(given)} sigmas were given but the model has more weighted layers")
                value = given[index]
            values.append(value)
        sigma_w, sigma_b = values
        return check_sigma_w(sigma_w), 0.0 if bias is None else check_sigma_b(sigma_b, 1)[0]

    def _value(self, arg):
        """An fx argument as a tensor constant, a Python value, or an _Info."""
        if isinstance(arg, torch.fx.Node):
            if arg.name in self.info:
                return self.info[arg.name]
            if arg.name in self.tensors:
                return self.tensors[arg.name]
            if arg.name in self.symbols:
                return None
            raise Unsupported(f"{arg.name} is not an input, weight or computed value")
        return arg

    def _add(self, fx_node, rule, inputs: list, shape: tuple, **flags) -> _Info:
        node = Node(fx_node.name, rule, tuple(i.node.name for i in inputs), max(len(shape) - 1, 0))
        self.nodes.append(node)
        above = frozenset().union(*(i.above for i in inputs))
        info = _Info(node, shape, False, above=above, **flags)
        self.info[fx_node.name] = info
        return info

    def _weight(self, arg, op: str) -> torch.Tensor:
        if not isinstance(arg, torch.fx.Node) or arg.name not in self.param_names:
            raise Unsupported(f"{op} whose weight is not a parameter of the model has no NNGP rule")
        name = self.param_names[arg.name]
        self.used_params[name] = self.used_params.get(name, 0) + 1
        if self.used_params[name] > 1:
            raise Unsupported(f"parameter {name} is used by more than one operation (shared weights have no NNGP rule)")
        return self.tensors[arg.name]

    # ------------------------------------------------------------------ compilation
    def compile(self) -> Graph:
        graph = self.program.graph
        user_inputs = list(self.signature.user_inputs)
        if len(user_inputs) != 1:
            raise Unsupported(f"the model takes {len(user_inputs)} inputs; an NNGP needs one tensor x")
        output = next(n for n in graph.nodes if n.op == "output")
        results = output.args[0] if isinstance(output.args[0], (tuple, list)) else (output.args[0],)
        if len(results) != 1:
            raise Unsupported(f"the model returns {len(results)} values; an NNGP needs one tensor of logits")
        needed = self._ancestors(results[0])
        for fx_node in graph.nodes:
            if fx_node.op == "placeholder" and fx_node.name == user_inputs[0]:
                node = Node("x", None, (), max(len(self.input_shape) - 1, 0), raw=True)
                self.nodes.append(node)
                self.info[fx_node.name] = _Info(node, self.input_shape, True)
            elif fx_node.op == "call_function" and fx_node.name in needed:
                self._call(fx_node)
        last = self._value(results[0])
        if not isinstance(last, _Info) or last.raw:
            raise Unsupported("the output does not depend on any weight of the model")
        if len(last.shape) > 1:
            raise Unsupported(
                f"the output has shape (n, {', '.join(map(str, last.shape))}); flatten it to (n, C) logits"
            )
        if not last.zero_mean:
            raise Unsupported(
                f"the output ({last.node.rule.describe()}) is not zero-mean; the NNGP prior needs a weighted read-out"
            )
        outputs = last.shape[0] if last.shape else 1
        return Graph(self.nodes, last.node.name, input_shape=self.input_shape, outputs=outputs)

    def _ancestors(self, node) -> set:
        seen, stack = set(), [node]
        while stack:
            current = stack.pop()
            if isinstance(current, torch.fx.Node) and current.name not in seen:
                seen.add(current.name)
                stack.extend(current.all_input_nodes)
        return seen

    def _call(self, fx_node) -> None:
        target, op = fx_node.target, _op_name(fx_node.target)
        if not isinstance(fx_node.meta.get("val"), torch.Tensor):
            self.symbols.add(fx_node.name)
            return
        args = [self._value(a) for a in fx_node.args]
        kwargs = {k: self._value(v) for k, v in fx_node.kwargs.items()}
        infos = [a for a in [*args, *kwargs.values()] if isinstance(a, _Info)]
        shape = _static_shape(fx_node)
        if infos and all(i.raw for i in infos) and target not in ATEN_LINEAR + ATEN_CONVOLUTIONS:
            self._refuse_weights(fx_node, op, "on the input before any weighted layer")
            self._preprocess(fx_node, target, infos, shape)
            return
        if not infos:
            raise Unsupported(f"{op} does not act on the input")
        handler = OP_RULES.get(target)
        if handler is None:
            raise Unsupported(f"{op} has no NNGP rule")
        handler(self, Call(fx_node, args, kwargs, shape, op))

    def add_rule(self, call: Call, rule, inputs: list, **flags) -> _Info:
        """Add ``rule`` applied to ``inputs`` as the node of ``call`` (``flags``: zero_mean, fresh)."""
        return self._add(call.fx_node, rule, inputs, call.shape, **flags)

    def _refuse_weights(self, fx_node, op: str, where: str) -> None:
        """A model tensor (trained parameter or buffer) used as a constant would make the prior depend on training."""
        used = [self.param_names[a.name] for a in fx_node.all_input_nodes if a.name in self.param_names]
        if used:
            raise Unsupported(
                f"{op} {where} uses the model's tensor {used[0]}, whose trained value would make the prior "
                "data-dependent; it has no NNGP rule"
            )

    def _preprocess(self, fx_node, target, infos, shape) -> None:
        if target in _RESHAPES or target in (aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims):

            def fn(x, shape=shape):
                return x.reshape(x.shape[0], *shape)
        else:
            template = list(fx_node.args)
            positions = [i for i, a in enumerate(template) if isinstance(a, torch.fx.Node)]
            constants = {i: self._value(template[i]) for i in positions}
            kwargs = dict(fx_node.kwargs)

            def fn(*values):
                call, it = list(template), iter(values)
                for i in positions:
                    value = constants[i]
                    if value is None:
                        raise TypeError(f"{_op_name(target)} on the input takes a traced size")
                    call[i] = next(it) if isinstance(value, _Info) else value.to(dtype=torch.float64)
                return target(*call, **kwargs)

        node = Node(fx_node.name, Preprocess(fn, _op_name(target)), tuple(i.node.name for i in infos), 0, raw=True)
        node.d = max(len(shape) - 1, 0)
        self.nodes.append(node)
        self.info[fx_node.name] = _Info(node, shape, True)

    def _linear(self, call: Call) -> None:
        fx_node, x = call.fx_node, call.args[0]
        if len(x.shape) != 1:
            raise Unsupported(f"linear applied to features of shape {x.shape} has no NNGP rule; flatten them first")
        weight = self._weight(fx_node.args[1], "linear")
        bias = (
            self._weight(fx_node.args[2], "linear") if len(fx_node.args) > 2 and fx_node.args[2] is not None else None
        )
        sw, sb = self._sigmas(int(weight.shape[1]), bias)
        rule = Dense(sw, sb, int(weight.shape[1]), int(weight.shape[0]))
        info = self.add_rule(call, rule, [x], zero_mean=True, fresh=fx_node.name)
        info.above = info.above | {fx_node.name}
        self.weights[fx_node.name] = (weight, bias)

    def _conv(self, call: Call) -> None:
        fx_node, target, args, x = call.fx_node, call.fx_node.target, call.args, call.args[0]
        weight = self._weight(fx_node.args[1], "convolution")
        bias = (
            self._weight(fx_node.args[2], "convolution")
            if len(fx_node.args) > 2 and fx_node.args[2] is not None
            else None
        )
        d = weight.dim() - 2
        if d not in (1, 2):
            raise Unsupported(f"{d}-d convolution has no NNGP rule (1-d and 2-d only)")
        rest = list(args[3:])
        if target in (aten.convolution.default, aten._convolution.default):
            stride, padding, dilation, transposed, _, groups = rest[:6]
            if transposed:
                raise Unsupported("transposed convolution has no NNGP rule")
        else:
            stride, padding, dilation, groups = (rest + [1, 0, 1, 1][len(rest) :])[:4]
        if int(groups) != 1:
            raise Unsupported(f"grouped convolution (groups={groups}) has no NNGP rule")
        kernel_size = tuple(int(v) for v in weight.shape[2:])
        stride, dilation = _pair_list(stride, d), _pair_list(dilation, d)
        if padding == "valid":
            pads = ((0, 0),) * d
        elif padding == "same":
            totals = [dil * (k - 1) for k, dil in zip(kernel_size, dilation, strict=False)]
            pads = tuple((t // 2, t - t // 2) for t in totals)
        else:
            pads = tuple((p, p) for p in _pair_list(padding, d))
        sw, sb = self._sigmas(int(weight[0].numel()), bias)
        channels = (int(weight.shape[1]), int(weight.shape[0]))
        rule = Conv(sw, sb, kernel_size, stride, pads, dilation, channels)
        info = self.add_rule(call, rule, [x], zero_mean=True, fresh=fx_node.name)
        info.above = info.above | {fx_node.name}
        self.weights[fx_node.name] = (weight, bias)

    def _avg_pool(self, call: Call) -> None:
        args, x = call.args, call.x
        d = len(x.shape) - 1
        defaults = [None, [], 0, False, True, None]  # avg_pool(x, kernel, stride, padding, ceil, include_pad, divisor)
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor = (
            list(args[1:]) + defaults[len(args) - 1 :]
        )[:6]
        kernel_size = _pair_list(kernel_size, d)
        stride = _pair_list(stride, d) if stride else kernel_size
        rule = AvgPool(kernel_size, stride, _pair_list(padding, d), bool(ceil_mode), bool(count_include_pad), divisor)
        self.add_rule(call, rule, [x], **call.keep)

    def _scale(self, call: Call) -> None:
        x, op = call.x, call.op
        self._refuse_weights(call.fx_node, op, "of hidden features")
        other = call.args[1]
        if isinstance(other, torch.Tensor) and other.numel() == 1:
            other = float(other)
        if isinstance(other, bool) or not isinstance(other, Real):
            raise Unsupported(f"{op} of two computed values has no NNGP rule (only by a constant)")
        factor = 1.0 / float(other) if _SCALES[call.fx_node.target] else float(other)
        self.add_rule(call, Scale(factor), [x], **call.keep)

    def _residual(self, call: Call) -> None:
        fx_node, op, args, kwargs = call.fx_node, call.op, call.args, call.kwargs
        a, b = call.x, args[1]
        if not (isinstance(a, _Info) and isinstance(b, _Info)):
            raise Unsupported("adding a constant to hidden features has no NNGP rule")
        if a.raw or b.raw:
            raise Unsupported("a residual addition onto the raw input (before any weighted layer) has no NNGP rule")
        alpha = args[2] if len(args) > 2 else kwargs.get("alpha", 1)
        if alpha != 1:
            raise Unsupported(f"{op} with alpha={alpha} has no NNGP rule")
        if a.shape != b.shape:
            raise Unsupported(f"{op} of shapes {a.shape} and {b.shape} (broadcasting) has no NNGP rule")
        independent = a.node.name != b.node.name and any(
            u.fresh is not None and u.fresh not in v.above for u, v in ((a, b), (b, a))
        )
        if not independent:
            raise Unsupported(
                f"{op} of correlated branches ({fx_node.args[0]}, {fx_node.args[1]}): neither ends in fresh "
                f"zero-mean weights the other does not use, so K(a + b) != K(a) + K(b)"
            )
        self.add_rule(call, Add(), [a, b], zero_mean=a.zero_mean and b.zero_mean)

    def _activation(self, call: Call) -> None:
        x = call.x
        dual = dual_for_op(call.fx_node.target, tuple(call.args[1:]), call.kwargs)
        if dual is None:
            raise Unsupported(f"{call.op} has no NNGP rule")
        self.add_rule(call, Activation(dual), [x], zero_mean=x.zero_mean and dual.odd)

    def _dropout(self, call: Call) -> None:
        x = call.x
        if call.args[2:3] and call.args[2]:
            raise Unsupported("dropout in training mode has no NNGP rule; save the model in eval mode")
        self.add_rule(call, Identity("dropout (eval)"), [x], **call.keep)

    def _reshape(self, call: Call) -> None:
        x, shape = call.x, call.shape
        if shape == x.shape:
            self.add_rule(call, Identity("reshape"), [x], **call.keep)
        elif len(shape) == 1 and shape[0] == math.prod(x.shape):
            self.add_rule(call, Flatten(), [x], **call.keep)
        else:
            raise Unsupported(f"{call.op} of hidden features {x.shape} -> {shape} has no NNGP rule (only flattening)")

    def _adaptive_pool(self, call: Call) -> None:
        x = call.x
        if any(int(v) != 1 for v in _pair_list(call.args[1], len(x.shape) - 1)):
            raise Unsupported(f"{call.op} to output size {call.args[1]} has no NNGP rule (only size 1, global pooling)")
        self.add_rule(call, GlobalMean(len(x.shape) - 1, keep=True), [x], **call.keep)

    def _mean(self, call: Call) -> None:
        x, args = call.x, call.args
        rank = len(x.shape) + 1
        dims = sorted(int(v) % rank for v in args[1])
        if dims != list(range(2, rank)):
            raise Unsupported(f"mean over dims {list(args[1])} has no NNGP rule (only over every spatial axis)")
        keepdim = bool(args[2]) if len(args) > 2 else bool(call.kwargs.get("keepdim", False))
        self.add_rule(call, GlobalMean(rank - 2, keep=keepdim), [x], **call.keep)

    # ------------------------------------------------------------------ the forward check
    def check(self, graph: Graph) -> None:
        """Run the compiled graph's forward rules with the model's weights; they must give the model's output."""
        generator = seeds.generator(0)
        x = torch.randn((3, *self.input_shape), generator=generator, dtype=torch.float64)
        values: dict = {"x": x}
        for node in graph.nodes[1:]:
            inputs = [values[name] for name in node.inputs]
            if node.name in self.weights:
                weight, bias = self.weights[node.name]
                values[node.name] = node.rule.forward(*inputs, weight.double(), None if bias is None else bias.double())
            else:
                values[node.name] = node.rule.forward(*inputs)
        module = ExportedModel(self.program)
        with torch.no_grad():
            dtype = next((t.dtype for t in self.tensors.values() if t is not None and t.is_floating_point()), x.dtype)
            expected = module(x.to(dtype)).to(torch.float64)
        got = values[graph.output].reshape(expected.shape)
        scale = float(expected.abs().max()) + 1e-12
        tolerance = 1e-10 if dtype == torch.float64 else 1e-4
        if not torch.allclose(got, expected, rtol=tolerance, atol=tolerance * scale):
            raise Unsupported(
                "the compiled layer chain does not reproduce the model's outputs "
                f"(max difference {float((got - expected).abs().max()):.3g}); an operation was not understood"
            )


OP_RULES: dict = {
    **dict.fromkeys(ATEN_LINEAR, _Compiler._linear),
    **dict.fromkeys(ATEN_CONVOLUTIONS, _Compiler._conv),
    **dict.fromkeys(ACTIVATION_OPS, _Compiler._activation),
    **dict.fromkeys(_IDENTITIES, unary(lambda call: Identity("identity"))),
    **dict.fromkeys(_DROPOUTS, _Compiler._dropout),
    **dict.fromkeys(_RESHAPES, _Compiler._reshape),
    **dict.fromkeys((aten.avg_pool2d.default, aten.avg_pool1d.default), _Compiler._avg_pool),
    **dict.fromkeys((aten.adaptive_avg_pool2d.default, aten.adaptive_avg_pool1d.default), _Compiler._adaptive_pool),
    aten.mean.dim: _Compiler._mean,
    **dict.fromkeys(_SCALES, _Compiler._scale),
    **dict.fromkeys((aten.add.Tensor, aten.add_.Tensor), _Compiler._residual),
}
"""ATen operation -> its handler(compiler, call), which adds the call's rule to the graph (or raises Unsupported).
A new layer rule is a class in :mod:`pacbayes.kernels.rules` and one line here (see :func:`unary`)."""


def compile_program(program, input_shape, sigma_w=None, sigma_b=None) -> tuple:
    """(Graph, "") for a torch.export ``program`` of one input of shape ``input_shape``, or (None, reason)."""
    compiler = _Compiler(program, input_shape, sigma_w, sigma_b)
    try:
        graph = compiler.compile()
        compiler.check(graph)
    except Unsupported as err:
        return None, str(err)
    except InputError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError) as err:  # a rule's forward refused the traced call
        return None, f"the compiled layer chain failed on the model's shapes ({type(err).__name__}: {err})"[:300]
    return graph, ""
