"""The expected time and memory said before EP and the certified sandwich, and the refusal of what cannot fit."""

import pytest

from pacbayes import memory
from pacbayes.errors import InputError
from pacbayes.evidence import budget
from pacbayes.evidence.multiclass_ep import chosen_method


def test_budget_scales_cubically_and_counts_matrices(monkeypatch):
    monkeypatch.setattr(budget, "_sweep_overhead", lambda device, classes=2: 0.0)  # the parts that do not scale
    monkeypatch.setattr(budget, "_seconds_per_square", lambda device: 0.0)  # as n^3
    small, large = budget.ep_budget(1000), budget.ep_budget(2000)
    assert large.seconds == pytest.approx(8 * small.seconds, rel=1e-9)
    assert small.peak_bytes == budget.EP_MATRICES * 8 * 1000**2
    assert "n = 1,000" in small.line() and "GiB" in small.line()


def test_multiclass_budget_follows_the_method_ep_runs():
    assert chosen_method(100, 3) == "dense"
    assert budget.multiclass_ep_budget(100, 3).n == 200  # the dense (C-1) m orthant
    assert chosen_method(1000, 10) == "structured"
    assert budget.multiclass_ep_budget(1000, 10).n == 1000  # C matrices of m x m


def test_a_run_that_cannot_fit_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 10**9)
    plan = budget.ep_budget(50_000)
    with pytest.raises(InputError, match=r"needs about .* GiB but only 953.7 MiB is free on cpu; use fewer"):
        plan.check_fits("cpu", "use fewer training points")
    budget.ep_budget(100).check_fits("cpu", "unused")  # fits: no error


def test_the_marginal_family_refuses_before_any_ep_work(monkeypatch):
    import torch

    from pacbayes.evidence import label_model
    from pacbayes.families import marginal

    monkeypatch.setattr(budget, "EP_MATRICES", 10**15)  # EP would need far more than any machine has
    monkeypatch.setattr(label_model, "ep_log_evidence", lambda *args, **kwargs: pytest.fail("EP must not start"))
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).double()
    x = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = (x[:, 0] > 0).long()
    with pytest.raises(InputError, match="--m"):
        marginal.marginal_bounds(model, x[:6], labels[:6], x[6:], labels[6:], classes=2, delta=0.05)


def test_the_certified_budget_follows_the_sampler_that_runs(monkeypatch):
    monkeypatch.setattr(budget, "_sampler_rates", lambda device: (1e-9, 1e-4))  # no timing probes in this test
    full = budget.certified_budget(2000, 1000)
    lower_only = budget.certified_budget(2000, 1000, upper=False)
    assert lower_only.seconds < full.seconds and "no psi*" in lower_only.what
    tilted = budget.certified_budget(2000, 1000, proposal="tilted", upper=False)
    assert tilted.seconds > lower_only.seconds  # the tilted proposal still needs its tilting
    _, dense = budget.evidence_budgets(1000, 10, 100, method="dense")
    _, structured = budget.evidence_budgets(1000, 10, 100)  # auto: 9,000 differences are the dense limit
    _, beyond = budget.evidence_budgets(1001, 10, 100)
    assert dense.n == 9000 and structured.n == 9000 and beyond.n == 1001 and "structured" in beyond.what
