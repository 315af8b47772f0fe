"""pacbayes.stochastic on tiny nets (m ~ 200): KL, priors, certificate assembly, ledger, attempts."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.distributions import Normal, kl_divergence

from pacbayes import bounds
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.stochastic import Schedule, certify_stochastic_network, stochastic_bound
from pacbayes.attempts import record_attempt
from pacbayes.stochastic.certificate import certify
from pacbayes.stochastic.gaussian import Layout, gaussian_kl
from pacbayes.stochastic.prior import parameters_of, reinitialised
from pacbayes.stochastic.dropout import activation_dropout, activation_layers
from pacbayes.stochastic.hint import chance_level, why_vacuous
from pacbayes.stochastic.train import PriorVariance, fit_posterior

FAST = Schedule(epochs=4, batch_size=50, lr=1e-3)


def _blobs(m, seed, flip=0.0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (m,), generator=gen)
    x = torch.randn(m, 2, generator=gen) * 0.7 + (2.0 * labels.float() - 1.0)[:, None]
    if flip:
        labels = torch.where(torch.rand(m, generator=gen) < flip, 1 - labels, labels)
    return x, labels


def _net():
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))


def _train(net, x, labels, steps=150):
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], labels.float()).backward()
        opt.step()
    return net


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny nets run faster on one thread (and the CI machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(3)
    net = _net()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    x, labels = _blobs(200, seed=1)
    return _train(net, x, labels), init, x, labels


# --- KL -----------------------------------------------------------------------------------------


def test_gaussian_kl_matches_torch_distributions_and_the_full_covariance_formula():
    gen = torch.Generator().manual_seed(0)
    d = 7
    mean, prior_mean = (
        torch.randn(d, generator=gen, dtype=torch.float64),
        torch.randn(d, generator=gen, dtype=torch.float64),
    )
    log_var = torch.randn(d, generator=gen, dtype=torch.float64) - 2.0
    log_lam = torch.tensor(-1.3, dtype=torch.float64)
    ours = float(gaussian_kl(mean, log_var, prior_mean, log_lam))
    lam = math.exp(-1.3)
    reference = float(
        kl_divergence(
            Normal(mean, torch.exp(0.5 * log_var)),
            Normal(prior_mean, torch.full((d,), math.sqrt(lam), dtype=torch.float64)),
        ).sum()
    )
    assert ours == pytest.approx(reference, rel=1e-12)
    # multivariate closed form with dense matrices (numpy), independent of the diagonal algebra
    sq, sp = np.diag(np.exp(log_var.numpy())), lam * np.eye(d)
    diff = (prior_mean - mean).numpy()
    dense = 0.5 * (
        np.trace(np.linalg.solve(sp, sq))
        + diff @ np.linalg.solve(sp, diff)
        - d
        + np.linalg.slogdet(sp)[1]
        - np.linalg.slogdet(sq)[1]
    )
    assert ours == pytest.approx(dense, rel=1e-12)


def test_gaussian_kl_is_zero_at_the_prior_and_differentiable():
    w0 = torch.randn(50, dtype=torch.float64)
    log_lam = torch.tensor(math.log(0.01), dtype=torch.float64, requires_grad=True)
    log_var = torch.full((50,), math.log(0.01), dtype=torch.float64, requires_grad=True)
    kl = gaussian_kl(w0.clone(), log_var, w0, log_lam)
    assert float(kl.detach()) == pytest.approx(0.0, abs=1e-12)
    kl.backward()
    assert torch.allclose(log_var.grad, torch.zeros(50, dtype=torch.float64), atol=1e-12)


def test_bound_forms_accept_tensors_with_the_same_values():
    kl, j = torch.tensor(812.5, dtype=torch.float64, requires_grad=True), torch.tensor(650.0, dtype=torch.float64)
    value = bounds.pbb_quad(0.07, bounds.pbb_complexity(kl, 5000, 0.05, j))
    expected = bounds.pbb_quad(0.07, bounds.pbb_complexity(812.5, 5000, 0.05, 650.0))
    assert float(value.detach()) == pytest.approx(expected, rel=1e-12)
    value.backward()
    assert kl.grad > 0


def test_layout_round_trip():
    params = parameters_of(_net())
    layout = Layout.of(params)
    back = layout.unflatten(layout.flatten(params))
    assert all(torch.equal(back[n], params[n]) for n in params)


# --- priors -------------------------------------------------------------------------------------


def test_prior_at_the_trained_weights_is_refused(trained):
    net, _, x, labels = trained
    with pytest.raises(InputError, match="trained weights"):
        stochastic_bound(net, x, labels, init_state=net.state_dict(), mc_samples=2, schedule=FAST)


def test_init_seed_recreates_the_seeded_construction_and_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    fresh = parameters_of(_net())
    other = _train(_net(), *_blobs(50, seed=2), steps=5)
    state = torch.random.get_rng_state()
    again = reinitialised(other, 11)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(again[n], fresh[n]) for n in fresh)


def test_bad_init_inputs_are_refused(trained, tmp_path):
    net, init, x, labels = trained
    with pytest.raises(InputError, match="not both"):
        stochastic_bound(net, x, labels, init_state=init, init_seed=3, mc_samples=2, schedule=FAST)
    wrong = dict(init)
    wrong["0.weight"] = torch.zeros(3, 3)
    with pytest.raises(InputError, match="shape"):
        stochastic_bound(net, x, labels, init_state=wrong, mc_samples=2, schedule=FAST)
    pickled = tmp_path / "code.pt"
    torch.save({"0.weight": Layout(("a",), ((1,),))}, pickled)  # a custom class: not weights-only
    with pytest.raises(ModelLoadError):
        stochastic_bound(net, x, labels, init_state=str(pickled), mc_samples=2, schedule=FAST)


# --- the certificate ----------------------------------------------------------------------------


def test_certificate_grows_when_the_monte_carlo_budget_drops(trained):
    net, init, x, labels = trained
    few = stochastic_bound(net, x, labels, init_state=init, mc_samples=3, schedule=FAST)[0]
    many = stochastic_bound(net, x, labels, init_state=init, mc_samples=300, schedule=FAST)[0]
    assert few.details["kl"] == many.details["kl"]  # same posterior: only the sampling differs
    assert few.value > many.value + 0.1


def test_certificate_is_the_composition_of_the_published_bounds(trained):
    net, init, x, labels = trained
    result = stochastic_bound(net, x, labels, init_state=init, mc_samples=40, schedule=FAST, delta=0.1)[0]
    d = result.details
    share = bounds.series_delta(1, 0.1) / 2  # attempt 1, then split between KL and sampling
    empirical = bounds.sample_convergence_bound(d["sampled_error"], 40, share)
    # the prior std is fixed in advance (0.03): one prior, the whole share, no grid
    assert d["prior_variance"] == pytest.approx(0.03**2, rel=1e-12) and d["grid_index"] is None
    assert result.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, d["kl"], 200, share), rel=1e-12)
    assert "lambda_grid_other_points" not in result.delta
    assert result.delta["sample_convergence"] == pytest.approx(share, rel=1e-12)
    assert math.fsum(result.delta.values()) == pytest.approx(0.1, rel=1e-12)
    assert math.fsum(result.delta.values()) <= 0.1 + 1e-16
    assert result.certified and result.name == "dziugaite-roy" and "N(w, diag(s))" in result.certifies
    json.dumps(result.to_dict())


def test_certificate_on_the_lambda_grid_pays_for_the_grid_point(trained):
    net, init, x, labels = trained
    result = stochastic_bound(
        net, x, labels, init_state=init, mc_samples=40, schedule=FAST, delta=0.1, lambda_grid=True
    )[0]
    d = result.details
    share = bounds.series_delta(1, 0.1) / 2
    empirical = bounds.sample_convergence_bound(d["sampled_error"], 40, share)
    expected = bounds.pac_bayes_kl_bound(empirical, d["kl"], 200, bounds.series_delta(d["grid_index"], share))
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert d["prior_variance"] == pytest.approx(bounds.grid_variance(d["grid_index"]), rel=1e-12)
    assert result.delta["lambda_grid_other_points"] == pytest.approx(share - expected_share(d), rel=1e-12)
    assert math.fsum(result.delta.values()) <= 0.1 + 1e-16 and d["lambda_search"] == "grid"


def expected_share(details):
    return bounds.series_delta(details["grid_index"], bounds.series_delta(1, 0.1) / 2)


def test_bound_holds_against_the_true_stochastic_error():
    torch.manual_seed(5)
    net = _net()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    x, labels = _blobs(200, seed=4, flip=0.1)
    _train(net, x, labels)
    cert = certify_stochastic_network(net, x, labels, init_state=init, mc_samples=50, schedule=FAST, objective="quad")
    x_test, labels_test = _blobs(4000, seed=99, flip=0.1)
    true = cert.error(x_test, labels_test, n=50)
    assert 0.05 < true <= cert.result.value < 1.0


def test_random_labels_give_a_vacuous_bound():
    torch.manual_seed(6)
    net = _net()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    x, _ = _blobs(200, seed=7)
    noise = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(8))
    _train(net, x, noise, steps=300)
    result = stochastic_bound(net, x, noise, init_state=init, mc_samples=50, schedule=FAST)[0]
    assert result.value > 0.5
    assert "errs on" in result.details["why_vacuous"]  # random labels: the net's own error, not the KL


def test_same_seed_same_number_and_the_seed_matters(trained):
    net, init, x, labels = trained
    a = stochastic_bound(net, x, labels, init_state=init, mc_samples=20, schedule=FAST, seed=4)[0]
    b = stochastic_bound(net, x, labels, init_state=init, mc_samples=20, schedule=FAST, seed=4)[0]
    c = stochastic_bound(net, x, labels, init_state=init, mc_samples=20, schedule=FAST, seed=5)[0]
    assert a.value == b.value and a.details["kl"] == b.details["kl"]
    assert c.details["kl"] != a.details["kl"]


# --- attempts -----------------------------------------------------------------------------------


def test_attempts_are_union_bounded_through_the_ledger(trained, tmp_path):
    net, init, x, labels = trained
    ledger = tmp_path / "attempts.jsonl"
    first = stochastic_bound(net, x, labels, init_state=init, mc_samples=5, schedule=FAST, attempts_ledger=ledger)[0]
    second = stochastic_bound(
        net, x, labels, init_state=init, mc_samples=5, schedule=FAST, attempts_ledger=ledger, seed=1
    )[0]
    assert (first.details["attempt"], second.details["attempt"]) == (1, 2)
    assert second.delta["other_attempts"] == pytest.approx(0.05 * (1 - 6 / (4 * math.pi**2)), rel=1e-12)
    assert math.fsum(second.delta.values()) == pytest.approx(0.05, rel=1e-12)
    assert len(ledger.read_text().splitlines()) == 2
    # a different data set is a different key: its count starts again at 1
    assert record_attempt(ledger, "another-key", {}) == 1
    with pytest.raises(InputError, match="not both"):
        stochastic_bound(
            net, x, labels, init_state=init, mc_samples=5, schedule=FAST, attempts_ledger=ledger, attempt=3
        )


# --- modes --------------------------------------------------------------------------------------


def test_fixed_mean_keeps_the_trained_weights(trained):
    net, init, x, labels = trained
    params = parameters_of(net)
    layout = Layout.of(params)
    start = layout.flatten(params)
    posterior, lam = fit_posterior(
        net,
        layout,
        start,
        layout.flatten(init),
        x,
        labels,
        objective="classic",
        delta=0.02,
        m=200,
        prior_variance=PriorVariance(0.01, on_grid=True),
        start_variance=0.001,
        fixed_mean=True,
        schedule=FAST,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(posterior.mean, start)
    assert not torch.equal(posterior.log_var, torch.full_like(start, float(posterior.log_var[0])))  # s moved
    assert lam != 0.01  # lambda moved on the grid
    cert = certify(posterior, layout.flatten(init), lam, 0.1, 100, 200, 0.02, 0.02)
    assert cert["lambda"] == bounds.grid_variance(cert["j"])
    result = stochastic_bound(net, x, labels, init_state=init, mc_samples=5, schedule=FAST, fixed_mean=True)[0]
    assert "fixed-mean" in result.certifies and result.details["mean_mode"] == "fixed"
    assert result.details["mode"] == "around-model-fixed-mean"


def test_a_fixed_prior_variance_does_not_move(trained):
    net, init, x, labels = trained
    params = parameters_of(net)
    layout = Layout.of(params)
    _, lam = fit_posterior(
        net,
        layout,
        layout.flatten(init),
        layout.flatten(init),
        x,
        labels,
        objective="quad",
        delta=0.02,
        m=100,
        prior_variance=PriorVariance(0.0009, on_grid=False),
        start_variance=0.0009,
        fixed_mean=False,
        schedule=FAST,
        generator=torch.Generator().manual_seed(0),
    )
    assert lam == pytest.approx(0.0009, rel=1e-6)


def test_the_three_modes_are_named_and_only_the_learned_one_starts_at_kl_zero(trained):
    net, init, x, labels = trained
    runs = {
        mode: stochastic_bound(net, x, labels, init_state=init, mc_samples=5, schedule=FAST, **options)[0]
        for mode, options in [
            ("learned-from-prior", {}),
            ("around-model", {"posterior_start": "model"}),
            ("around-model-fixed-mean", {"fixed_mean": True}),
        ]
    }
    for mode, result in runs.items():
        assert result.details["mode"] == mode and result.classifier == "stochastic-network"
    assert runs["learned-from-prior"].details["kl_at_start"] == pytest.approx(0.0, abs=1e-9)
    assert "learned from the prior" in runs["learned-from-prior"].certifies
    # around the model the start pays ||w - w0||^2 / (2 lambda) and more (s < lambda)
    w, w0 = Layout.of(parameters_of(net)).flatten(parameters_of(net)), Layout.of(init).flatten(init)
    assert runs["around-model"].details["kl_at_start"] > float(((w - w0).double() ** 2).sum()) / (2 * 0.03**2)
    assert runs["learned-from-prior"].details["posterior_points"] == 200


def test_data_dependent_prior_uses_only_the_remaining_points(trained):
    net, _, x, labels = trained
    result = stochastic_bound(
        net, x, labels, prior_split=0.3, mc_samples=5, schedule=FAST, objective="lambda", init_seed=0
    )[0]
    assert result.details["m"] == 140 and result.details["m_prior"] == 60
    assert result.details["prior_kind"] == "data-dependent" and result.name == "pbb-lambda"


def test_zero_prior_is_labelled_and_multiclass_models_work():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(120, 2)
    labels = torch.randint(0, 3, (120,))
    result = stochastic_bound(net, x, labels, mc_samples=5, schedule=FAST, objective="classic")[0]
    assert result.details["prior_kind"] == "zero" and "zero-centred" in result.assumptions[1]
    assert 0.0 <= result.value <= 1.0


@pytest.mark.parametrize(
    "options, match",
    [
        ({"objective": "elbo"}, "unknown objective"),
        ({"prior_split": 1.0}, "prior_split"),
        ({"prior_split": 0.99}, "both parts"),
        ({"delta": 0.0}, "delta"),
        ({"mc_samples": 0}, "mc_samples"),
        ({"posterior_start": "middle"}, "posterior_start"),
        ({"prior_std": 0.0}, "prior_std"),
        ({"prior_std": float("inf")}, "prior_std"),
        ({"prior_dropout": 1.0}, "prior_dropout"),
    ],
)
def test_bad_options_are_refused(trained, options, match):
    net, init, x, labels = trained
    with pytest.raises(InputError, match=match):
        stochastic_bound(net, x, labels, init_state=init, schedule=FAST, **options)


@pytest.mark.parametrize("options", [{"epochs": 0}, {"batch_size": 2.5}, {"lr": 0.0}, {"lr_var": float("nan")}])
def test_bad_schedules_are_refused(options):
    with pytest.raises(InputError):
        Schedule(**options)


def test_labels_the_model_cannot_output_are_refused(trained):
    net, init, x, labels = trained
    with pytest.raises(InputError, match="labels must lie in 0..1"):
        stochastic_bound(net, x, labels + 1, init_state=init, mc_samples=2, schedule=FAST)
    with pytest.raises(InputError, match="integer class indices"):
        stochastic_bound(net, x, labels.float(), init_state=init, mc_samples=2, schedule=FAST)


# --- learned prior: dropout ----------------------------------------------------------------------


def test_activation_dropout_is_seeded_unbiased_and_removed_on_exit():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 400), nn.ReLU(), nn.Linear(400, 1))
    x = torch.randn(5, 3)
    assert len(activation_layers(net)) == 1
    clean = net(x)
    with activation_dropout(net, 0.5, torch.Generator().manual_seed(1)):
        a = net(x)
    with activation_dropout(net, 0.5, torch.Generator().manual_seed(1)):
        b = net(x)
    assert torch.equal(a, b) and not torch.allclose(a, clean)
    assert torch.equal(net(x), clean)  # hooks removed
    with activation_dropout(net, 0.0, torch.Generator().manual_seed(1)):
        assert torch.equal(net(x), clean)
    # the hidden units: a fraction p dropped, the rest scaled by 1 / (1 - p)
    hidden = net[1](net[0](x))
    with activation_dropout(net, 0.25, torch.Generator().manual_seed(2)):
        dropped = net[1](net[0](x))
    kept = dropped != 0
    assert torch.allclose(dropped[kept], hidden[kept] / 0.75)
    assert abs(float((~kept & (hidden != 0)).sum()) / float((hidden != 0).sum()) - 0.25) < 0.05
    # inverted dropout keeps the mean: average of many dropped outputs -> the clean output (linear head)
    gen = torch.Generator().manual_seed(3)
    with activation_dropout(net, 0.2, gen):
        mean = torch.stack([net(x) for _ in range(4000)]).mean(0)
    assert torch.allclose(mean, clean, atol=0.02)


def test_learned_prior_is_trained_on_the_held_out_part_and_fits_it():
    torch.manual_seed(7)
    net = _net()
    x, labels = _blobs(400, seed=12)
    _train(net, x, labels, steps=20)
    result = stochastic_bound(
        net,
        x,
        labels,
        init_seed=7,
        prior_split=0.5,
        mc_samples=200,
        schedule=FAST,
        objective="quad",
        prior_schedule=Schedule(epochs=30, batch_size=50, lr=0.05),
    )[0]
    d = result.details
    assert d["m"] == 200 and d["m_prior"] == 200 and d["posterior_points"] == 400
    assert "30 epochs, dropout 0.2 after 1 activation layers" in d["prior"]
    assert d["kl_at_start"] == pytest.approx(0.0, abs=1e-9)
    assert d["mean_network_error"] < 0.1  # the learned prior mean already separates the blobs
    assert result.value < 0.5 and d["why_vacuous"] == ""


# --- the vacuity hint ----------------------------------------------------------------------------


def _vacuous(**numbers):
    defaults = {"m": 1000, "delta_kl": 0.01, "mc_samples": 1000, "classes": 2, "mode": "around-model"}
    return why_vacuous(1.0, **{**defaults, **numbers})


def test_the_hint_blames_the_kl_the_error_or_the_sampling():
    kl_line = _vacuous(kl=83790.0, sampled_error=0.05, empirical_bound=0.06)
    assert kl_line.startswith("KL = 83,790 nats against m = 1,000") and "--posterior-start prior" in kl_line
    # check the diagnosis independently: at KL = 0 the bound is informative, at the real KL it is not
    assert (
        bounds.pac_bayes_kl_bound(0.06, 0.0, 1000, 0.01) < 0.5 <= bounds.pac_bayes_kl_bound(0.06, 83790.0, 1000, 0.01)
    )
    error_line = _vacuous(kl=1.0, sampled_error=0.49, empirical_bound=0.5)
    assert "errs on 0.490" in error_line and "KL = 0" in error_line
    sampling_line = _vacuous(kl=10.0, sampled_error=0.2, empirical_bound=0.55, mc_samples=3)
    assert "3 posterior draws" in sampling_line and "--mc-samples" in sampling_line
    assert (
        why_vacuous(
            0.3,
            kl=1e5,
            sampled_error=0.1,
            empirical_bound=0.1,
            m=1000,
            delta_kl=0.01,
            mc_samples=10,
            classes=2,
            mode="around-model",
        )
        == ""
    )
    assert chance_level(10) == pytest.approx(0.9)  # 0.6 on ten classes is not vacuous
    assert _vacuous(kl=5e4, sampled_error=0.1, empirical_bound=0.1, classes=10, mode="learned-from-prior").startswith(
        "KL"
    )


def test_a_far_posterior_gets_the_kl_hint_in_the_report(trained):
    net, init, x, labels = trained
    far = {k: v + 5.0 for k, v in init.items()}  # a prior mean far from the trained weights
    result = stochastic_bound(
        net, x, labels, init_state=far, mc_samples=20, schedule=FAST, posterior_start="model", prior_std=0.01
    )[0]
    assert result.value > 0.99 and result.details["why_vacuous"].startswith("KL = ")
