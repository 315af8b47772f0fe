"""Choosing between the analytic and the Monte Carlo kernel from their estimates, said before any work."""

import pytest
import torch
from torch import nn

from pacbayes.families.marginal import build_kernel
from pacbayes.families.settings import MarginalSettings
from pacbayes.kernels import CompiledNNGP, MonteCarloNNGP
from pacbayes.kernels.choice import SLOWER, MonteCarloForecast, choose_kernel, duration


def _forecast(seconds=100.0, error=0.005, rank=10_000) -> MonteCarloForecast:
    return MonteCarloForecast(seconds, samples=512, relative_error=error, target_error=0.01, rank=rank)


def test_a_cheap_analytic_kernel_is_kept_without_comparison():
    choice = choose_kernel("auto", 3.0, None, 200)
    assert choice.kind == "analytic" and choice.notice == "" and "every operation has a kernel rule" in choice.reason


def test_auto_takes_the_monte_carlo_kernel_when_it_is_much_cheaper_and_good_enough():
    choice = choose_kernel("auto", 4620.0, _forecast(100.0), 200)
    assert choice.kind == "monte-carlo"
    assert "77 min" in choice.notice and "100 s" in choice.notice and "46.2 x slower" in choice.reason
    assert "--kernel-type analytic" in choice.notice


@pytest.mark.parametrize(
    "forecast,why",
    [
        (_forecast(100.0 * SLOWER * 0.9), "less than 3 x slower"),
        (_forecast(100.0, error=0.02), "would not meet its target standard error"),
        (_forecast(100.0, rank=150), "rank >= m = 200"),
    ],
)
def test_auto_keeps_a_slower_analytic_kernel_and_says_so(forecast, why):
    choice = choose_kernel("auto", 300.0, forecast, 200)
    assert choice.kind == "analytic" and why in choice.reason
    assert "--kernel-type monte-carlo would be faster" in choice.notice
    assert duration(300.0) in choice.notice and duration(forecast.seconds) in choice.notice


def test_an_analytic_kernel_asked_for_is_kept_and_the_faster_one_named():
    choice = choose_kernel("analytic", 4620.0, _forecast(100.0), 200)
    assert choice.kind == "analytic" and "asked for" in choice.reason
    assert "--kernel-type monte-carlo" in choice.notice


def test_nothing_is_said_when_the_analytic_kernel_is_the_faster():
    choice = choose_kernel("auto", 50.0, _forecast(100.0), 200)
    assert choice.kind == "analytic" and choice.notice == ""


def test_durations_read_naturally():
    assert [duration(s) for s in (42.4, 4620.0, 21000.0)] == ["42 s", "77 min", "5.8 h"]


POOLED = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 1))


@pytest.mark.parametrize("requested,kind", [("auto", MonteCarloNNGP), ("analytic", CompiledNNGP)])
def test_a_slow_pooled_kernel_is_announced_before_work(requested, kind, monkeypatch, capsys):
    monkeypatch.setattr(CompiledNNGP, "estimate", lambda self, n1, *args, **kwargs: (1e5, 0))
    settings = MarginalSettings(kernel=requested, quiet=False)
    kernel = build_kernel(POOLED, (1, 4, 4), settings, m=20)
    assert isinstance(kernel, kind)
    said = capsys.readouterr().err
    assert "the analytic kernel is estimated at 27.8 h" in said and "the Monte Carlo kernel at" in said
    assert ("--kernel-type analytic" if requested == "auto" else "--kernel-type monte-carlo") in said
    assert "27.8 h" in kernel.selection and kernel.selection.startswith(
        "Monte Carlo (auto)" if requested == "auto" else "analytic"
    )


def test_a_quick_pooled_kernel_is_analytic_without_a_word(capsys):
    kernel = build_kernel(POOLED, (1, 4, 4), MarginalSettings(quiet=False), m=20)
    assert isinstance(kernel, CompiledNNGP) and capsys.readouterr().err == ""
    assert kernel.selection.startswith("analytic: every operation has a kernel rule")
    assert torch.isfinite(kernel.matrix(torch.rand(3, 1, 4, 4))).all()
