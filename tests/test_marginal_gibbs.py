"""Q*'s Gibbs test error and the SGD ~ Bayes agreement diagnostic, against closed forms and sampling."""

import numpy as np
import pytest
import scipy.stats
from tasks import MnistTask

from pacbayes.errors import InputError
from pacbayes.evidence import ep_predict
from pacbayes.evidence.label_model import label_model
from pacbayes.families.marginal import MarginalSettings, baseline_subset, bayes_agreement, gibbs_test_error


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=50, n_test=200, seed=4, width=32)


def binary_probabilities(mean, variance):
    """Pr[f < 0], Pr[f > 0] for f ~ N(mean, variance): the closed form the binary label model uses."""
    positive = scipy.stats.norm.cdf(mean / np.sqrt(variance))
    return np.stack([1 - positive, positive], axis=1)


def test_gibbs_error_closed_forms():
    labels = np.array([1, 0, 1, 0])
    assert gibbs_test_error(binary_probabilities(np.zeros(4), np.ones(4)), labels) == pytest.approx(0.5)
    # a nearly deterministic posterior: the 0-1 error of sign(mean)
    mean = np.array([2.0, 2.0, -3.0, -1.0])
    assert gibbs_test_error(binary_probabilities(mean, np.full(4, 1e-12)), labels) == pytest.approx(0.5, abs=1e-12)
    one = binary_probabilities(np.array([1.0]), np.array([1.0]))
    assert gibbs_test_error(one, np.array([0])) == pytest.approx(0.841344746, rel=1e-8)


def test_binary_label_model_probabilities_equal_the_ep_predictive():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(14, 3))
    K = np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1))
    labels = (x[:10, 0] > 0).astype(int)
    model = label_model(2)
    ep = model.ep(K[:10, :10], labels, jitter=1e-6)
    mean, variance = ep_predict(ep, K[:10, 10:], np.diag(K)[10:])
    probabilities = model.class_probabilities(ep, K[:10, 10:], np.diag(K)[10:])
    np.testing.assert_allclose(probabilities, binary_probabilities(mean, variance), rtol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_gibbs_error_equals_sampling_the_posterior():
    rng = np.random.default_rng(0)
    n, classes = 50, 4
    mean, sd = rng.normal(size=(n, classes)), rng.uniform(0.3, 1.5, size=(n, classes))
    draws = np.argmax(mean + sd * rng.standard_normal((20_000, n, classes)), axis=2)
    probabilities = np.stack([(draws == c).mean(axis=0) for c in range(classes)], axis=1)
    labels = rng.integers(0, classes, size=n)
    assert gibbs_test_error(probabilities, labels) == pytest.approx(np.mean(draws != labels), abs=1e-12)


def test_bayes_agreement_against_sampling_and_closed_forms():
    rng = np.random.default_rng(1)
    n = 40
    mean, variance = rng.normal(size=n), rng.uniform(0.1, 2.0, size=n)
    bayes = (mean > 0).astype(int)
    model = np.where(rng.random(n) < 0.8, bayes, 1 - bayes)
    result = bayes_agreement(model, binary_probabilities(mean, variance))
    assert result["bayes_agreement"] == pytest.approx(np.mean(model == bayes))
    draws = (mean + np.sqrt(variance) * rng.standard_normal((200_000, n)) > 0).astype(int)
    assert result["gibbs_agreement"] == pytest.approx(np.mean(draws == bayes), abs=3e-3)
    assert result["model_gibbs_agreement"] == pytest.approx(np.mean(draws == model), abs=3e-3)
    # a model that is Q*'s vote agrees fully; a near-deterministic Q* agrees with itself
    sharp = binary_probabilities(mean, np.full(n, 1e-12))
    assert bayes_agreement(bayes, sharp)["gibbs_agreement"] == pytest.approx(1.0)
    assert bayes_agreement(bayes, binary_probabilities(mean, variance))["bayes_agreement"] == 1.0


def test_baseline_subset_is_seeded_and_bounded():
    settings = MarginalSettings(q_star_test_points=30, seed=5)
    chosen = baseline_subset(100, settings)
    assert len(chosen) == 30 and len(set(chosen)) == 30 and chosen.max() < 100
    np.testing.assert_array_equal(chosen, baseline_subset(100, settings))
    assert not np.array_equal(chosen, baseline_subset(100, MarginalSettings(q_star_test_points=30, seed=6)))
    np.testing.assert_array_equal(baseline_subset(20, settings), np.arange(20))
    with pytest.raises(InputError, match="q_star_test_points"):
        baseline_subset(20, MarginalSettings(q_star_test_points=0))


def test_bayes_agreement_reaches_the_report(data, trained):
    from pacbayes.certification import certify
    from pacbayes.report import render_text

    report = certify(trained, *data)
    diagnostics = report.diagnostics["marginal"]
    for key in ("bayes_agreement", "gibbs_agreement", "model_gibbs_agreement"):
        assert 0.0 <= diagnostics[key] <= 1.0
    assert report.to_dict()["diagnostics"]["marginal"]["bayes_agreement"] == diagnostics["bayes_agreement"]
    assert "MODEL agrees with Q*'s vote (diagnostic)" in render_text(report)


def test_the_report_names_the_kernel_analytic_chain_or_monte_carlo_estimate():
    import torch

    from pacbayes.families.marginal import kernel_summary
    from pacbayes.kernels import MonteCarloNNGP, analytic_kernel_or_reason

    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    analytic, _ = analytic_kernel_or_reason(net, (3,))
    assert kernel_summary(analytic) == (
        "analytic NNGP linear(3->16, sw=0.577, sb=0.333) > relu > linear(16->1, sw=0.577, sb=0.144) (1 logit)"
    )
    monte_carlo = MonteCarloNNGP(net, samples=64, seed=0)
    monte_carlo.matrix(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)))
    text = kernel_summary(monte_carlo)
    assert text.startswith("Monte Carlo NNGP of Sequential (readout estimator, 64 initialisations, rank 5")
    assert "entry standard error max" in text and "of the mean diagonal" in text
