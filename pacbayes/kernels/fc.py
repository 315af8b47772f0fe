"""Analytic NNGP kernel of a fully connected network (Neal 1996; Lee et al. 2018, eq. 4).

Network: z0 = W0 x + b0, then ``depth`` times z(l+1) = W(l+1) phi(z(l)) + b(l+1); the output is
the single logit z(depth). Weights are N(0, sigma_w^2 / fan_in), biases N(0, sigma_b(l)^2).
As every hidden width grows, the logit is a Gaussian process with covariance

    K0(x, x') = sigma_b(0)^2 + sigma_w^2 x.x' / d,
    K(l+1)(x, x') = sigma_b(l+1)^2 + sigma_w^2 E[phi(u) phi(u')],  (u, u') ~ N(0, K(l))

(docs/kernels.md#fully-connected; the expectations are in :mod:`pacbayes.kernels.activations`). With one hidden
layer the finite-width covariance already equals this kernel exactly when the first layer is
Gaussian; deeper finite nets differ by O(1/width).
"""

from collections.abc import Sequence

from pacbayes.kernels._blocks import builder_description, check_activation, check_depth, check_sigma_b, check_sigma_w
from pacbayes.kernels.activations import ACTIVATIONS
from pacbayes.kernels.compiled import CompiledNNGP, Graph, Node
from pacbayes.kernels.duals import Dual
from pacbayes.kernels.rules import Activation, Dense


class FullyConnectedNNGP(CompiledNNGP):
    """NNGP kernel of a depth-``depth`` fully connected net with relu, erf or linear activations.

    ``sigma_b`` is one bias standard deviation for every layer, or a sequence of depth + 1 of
    them (one per linear layer, first layer first), e.g. PyTorch's default 1/sqrt(3 fan_in).
    Inputs of shape (n, d); higher-rank inputs (n, c, h, w) are flattened. The kernel is the
    compiled chain Dense (Activation Dense)^depth of :mod:`pacbayes.kernels.rules`.
    """

    kind = "nngp-fc"

    def __init__(
        self, depth: int, activation: str = "relu", sigma_w: float = 1.0, sigma_b: float | Sequence[float] = 0.0
    ):
        self.depth = check_depth(depth)
        self.activation = check_activation(activation, ACTIVATIONS)
        self.sigma_w = check_sigma_w(sigma_w)
        self.sigma_b = check_sigma_b(sigma_b, self.depth + 1)
        nodes = [Node("x", None, (), 0, raw=True)]
        for layer, bias in enumerate(self.sigma_b):
            if layer:
                nodes.append(Node(f"phi{layer}", Activation(Dual(self.activation)), (nodes[-1].name,), 0))
            nodes.append(Node(f"dense{layer}", Dense(self.sigma_w, bias), (nodes[-1].name,), 0))
        super().__init__(Graph(nodes, nodes[-1].name))

    def describe(self) -> dict:
        return {
            **builder_description(self),
            **{k: v for k, v in super().describe().items() if k != "kind"},
        }
