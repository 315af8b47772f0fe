"""Every layer rule implements pacbayes.kernels.protocol.Rule, and a new rule is one class plus one table line."""

import inspect
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pacbayes.kernels import analytic_kernel_or_reason, compiler, rules
from pacbayes.kernels.duals import Dual
from pacbayes.kernels.protocol import Covariance, Rule

SIGMA_W, SIGMA_B = 1.3, 0.2


@dataclass(frozen=True)
class Abs:
    """A toy rule: phi(u) = |u|, E|u||v| = (2/pi) sqrt(K11 K22) (sqrt(1 - rho^2) + rho asin rho)."""

    needs_full_spatial: ClassVar[bool] = False
    uses_variances: ClassVar[bool] = True

    def forward(self, x):
        return x.abs()

    def kernel(self, *inputs: Covariance) -> Covariance:
        (cov,) = inputs
        v1, v2 = cov.broadcast_marginals()
        scale = (v1 * v2).sqrt()
        rho = (cov.tensor / scale).clamp(-1.0, 1.0)
        return cov.with_tensor(2.0 / math.pi * scale * ((1.0 - rho * rho).sqrt() + rho * torch.asin(rho)))

    def describe(self) -> str:
        return "abs"


class AbsLayer(nn.Module):
    def forward(self, x):
        return torch.abs(x)


@pytest.fixture
def with_abs(monkeypatch):
    """The one table line that registers the toy rule (not linear: its output is not zero-mean)."""
    monkeypatch.setitem(compiler.OP_RULES, torch.ops.aten.abs.default, compiler.unary(lambda call: Abs(), linear=False))


def _brute_force(cov0: torch.Tensor, draws: int = 100_000) -> torch.Tensor:
    """E[|z_i| |z_j|] for z ~ N(0, cov0) by sampling (seeded)."""
    factor = torch.linalg.cholesky(cov0 + 1e-12 * torch.eye(cov0.shape[0], dtype=torch.float64))
    z = torch.randn((draws, cov0.shape[0]), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = (z @ factor.T).abs()
    return a.T @ a / draws


def test_a_toy_rule_is_one_class_and_one_table_line(with_abs):
    net = nn.Sequential(nn.Linear(4, 16), AbsLayer(), nn.Linear(16, 1))
    kernel, reason = analytic_kernel_or_reason(net, (4,), sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    assert kernel is not None, reason
    assert kernel.describe()["layers"][1] == "abs"
    x = torch.randn((5, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cov0 = SIGMA_B**2 + SIGMA_W**2 * x @ x.T / 4
    expected = SIGMA_B**2 + SIGMA_W**2 * _brute_force(cov0)
    got = kernel.matrix(x)
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2 * float(expected.diagonal().mean()))
    torch.testing.assert_close(kernel.diagonal(x), got.diagonal(), rtol=1e-12, atol=0.0)


def test_the_toy_rule_keeps_every_pair_of_positions_before_pooling(with_abs):
    """conv -> |.| -> 2x2 average pool -> flatten -> linear: the toy rule runs in the full layout."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), AbsLayer(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 1))
    kernel, reason = analytic_kernel_or_reason(net, (1, 4, 4), sigma_w=SIGMA_W, sigma_b=SIGMA_B)
    assert kernel is not None, reason
    x = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    patches = F.unfold(x, 3, padding=1)  # (n, 9, 16)
    flat = patches.permute(0, 2, 1).reshape(-1, 9)  # (n * 16, 9): input i, position p
    cov0 = SIGMA_B**2 + SIGMA_W**2 * flat @ flat.T / 9
    second = _brute_force(cov0).reshape(3, 4, 4, 3, 4, 4)  # E|z_ip||z_jq|
    window = torch.zeros(4, 16, dtype=torch.float64)  # pooled position P averages its 2x2 window of p
    for p in range(16):
        window[(p // 4) // 2 * 2 + (p % 4) // 2, p] = 0.25
    pooled = torch.einsum("Pp,ipjq,Qq->iPjQ", window, second.reshape(3, 16, 3, 16), window)
    expected = SIGMA_B**2 + SIGMA_W**2 * pooled.diagonal(dim1=1, dim2=3).mean(dim=-1)
    torch.testing.assert_close(
        kernel.matrix(x, block_size=2), expected, rtol=2e-2, atol=2e-2 * float(expected.diagonal().mean())
    )


def test_without_its_table_line_the_toy_operation_is_refused():
    net = nn.Sequential(nn.Linear(4, 16), AbsLayer(), nn.Linear(16, 1))
    kernel, reason = analytic_kernel_or_reason(net, (4,))
    assert kernel is None and reason == "abs has no NNGP rule"


RULES = {
    rules.Dense: (rules.Dense(SIGMA_W, SIGMA_B), 0, False),
    rules.Conv: (rules.Conv(SIGMA_W, SIGMA_B, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)), 2, True),
    rules.Activation: (rules.Activation(Dual("relu")), 2, True),
    rules.Flatten: (rules.Flatten(), 2, False),
    rules.AvgPool: (rules.AvgPool((2, 2), (2, 2), (0, 0)), 2, True),
    rules.GlobalMean: (rules.GlobalMean(2, keep=False), 2, True),
    rules.Add: (rules.Add(), 2, True),
    rules.Scale: (rules.Scale(-2.0), 2, True),
    rules.Identity: (rules.Identity(), 2, True),
}


def _covariance(d: int, full: bool) -> Covariance:
    """A valid tile covariance of 2 x 3 inputs on a 4 x 4 grid (full or diagonal layout), with its marginals."""
    x = torch.randn((5, 16 if d else 1), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gram = torch.einsum("ip,jq->ipjq", x, x) + 0.5  # (5, P, 5, P), positive semi-definite
    spatial = (4, 4) if d else ()
    tile = gram[:2, :, 2:].permute(0, 2, 1, 3)  # (2, 3, P, P)
    tensor = tile.reshape(2, 3, *spatial, *spatial) if full else tile.diagonal(dim1=2, dim2=3).reshape(2, 3, *spatial)
    own = x * x + 0.5  # gram[i, p, i, p]
    marginals = (own[:2].reshape(2, *spatial), own[2:].reshape(3, *spatial))
    return Covariance(tensor.clone(), d, full and d > 0, pairs=False, marginals=marginals)


def test_every_rule_satisfies_the_protocol():
    listed = {
        cls
        for _, cls in inspect.getmembers(rules, inspect.isclass)
        if cls.__module__ == rules.__name__ and not cls.__name__.startswith("_")
    }
    assert listed == set(RULES)  # a new rule class is checked here too
    protocol_kernel = inspect.signature(Rule.kernel)
    for cls, (rule, d, full) in RULES.items():
        assert isinstance(rule, Rule), cls.__name__
        assert isinstance(cls.needs_full_spatial, bool) and isinstance(cls.uses_variances, bool)
        assert inspect.signature(cls.kernel) == protocol_kernel, cls.__name__
        assert isinstance(rule.describe(), str) and rule.describe()
        inputs = [_covariance(d, full or cls.needs_full_spatial) for _ in range(2 if cls is rules.Add else 1)]
        out = rule.kernel(*inputs)
        assert isinstance(out, Covariance) and out.tensor.dtype == torch.float64
        assert out.tensor.shape[:2] == (2, 3) and torch.isfinite(out.tensor).all()


def test_pooling_rules_are_the_ones_that_need_every_pair_of_positions():
    needs = {cls.__name__ for cls in RULES if cls.needs_full_spatial}
    assert needs == {"AvgPool", "GlobalMean"}
    assert {cls.__name__ for cls in RULES if cls.uses_variances} == {"Activation"}


def test_every_table_entry_is_a_handler_of_an_aten_operation():
    assert torch.ops.aten.relu.default in compiler.OP_RULES and torch.ops.aten.add.Tensor in compiler.OP_RULES
    for op, handler in compiler.OP_RULES.items():
        assert isinstance(op, torch._ops.OpOverload) and callable(handler)
        assert list(inspect.signature(handler).parameters)[:2] in (["self", "call"], ["compiler", "call"])
