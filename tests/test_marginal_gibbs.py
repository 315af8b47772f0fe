"""Q*'s Gibbs test error and the SGD ~ Bayes agreement diagnostic, against closed forms and sampling."""

import numpy as np
import pytest

from pacbayes.families.marginal import bayes_agreement, gibbs_test_error
from tasks import MnistTask


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=50, n_test=200, seed=4, width=32)


def test_gibbs_error_closed_forms():
    signs = np.array([1.0, -1.0, 1.0, -1.0])
    assert gibbs_test_error(np.zeros(4), np.ones(4), signs) == pytest.approx(0.5)
    # a nearly deterministic posterior: the 0-1 error of sign(mean)
    mean = np.array([2.0, 2.0, -3.0, -1.0])
    assert gibbs_test_error(mean, np.full(4, 1e-12), signs) == pytest.approx(0.5, abs=1e-12)
    assert gibbs_test_error(np.array([1.0]), np.array([1.0]), np.array([-1.0])) == pytest.approx(0.841344746, rel=1e-8)


def test_gibbs_error_equals_sampling_the_posterior():
    rng = np.random.default_rng(0)
    n = 50
    mean, variance = rng.normal(size=n), rng.uniform(0.1, 2.0, size=n)
    signs = rng.choice([-1.0, 1.0], size=n)
    draws = mean + np.sqrt(variance) * rng.standard_normal((200_000, n))
    sampled = float(np.mean(np.sign(draws) != signs))
    assert gibbs_test_error(mean, variance, signs) == pytest.approx(sampled, abs=3e-3)


def test_bayes_agreement_against_sampling_and_closed_forms():
    rng = np.random.default_rng(1)
    n = 40
    mean, variance = rng.normal(size=n), rng.uniform(0.1, 2.0, size=n)
    model = np.where(rng.random(n) < 0.8, np.sign(mean), -np.sign(mean))
    result = bayes_agreement(model, mean, variance)
    assert result["bayes_agreement"] == pytest.approx(np.mean(model == np.sign(mean)))
    draws = np.sign(mean + np.sqrt(variance) * rng.standard_normal((200_000, n)))
    assert result["gibbs_agreement"] == pytest.approx(np.mean(draws == np.sign(mean)), abs=3e-3)
    assert result["model_gibbs_agreement"] == pytest.approx(np.mean(draws == model), abs=3e-3)
    # a model that is the posterior-mean classifier agrees fully; a near-deterministic Q* agrees with itself
    assert bayes_agreement(np.sign(mean), mean, np.full(n, 1e-12))["gibbs_agreement"] == pytest.approx(1.0)
    assert bayes_agreement(np.sign(mean), mean, variance)["bayes_agreement"] == 1.0


def test_bayes_agreement_reaches_the_report(data, trained):
    from pacbayes.certification import certify
    from pacbayes.report import render_text

    report = certify(trained, *data)
    diagnostics = report.diagnostics["marginal"]
    for key in ("bayes_agreement", "gibbs_agreement", "model_gibbs_agreement"):
        assert 0.0 <= diagnostics[key] <= 1.0
    assert report.to_dict()["diagnostics"]["marginal"]["bayes_agreement"] == diagnostics["bayes_agreement"]
    assert "MODEL agrees with Q*'s mean (diagnostic)" in render_text(report)
