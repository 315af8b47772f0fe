"""pacbayes.stochastic on tiny nets (m ~ 200): KL, priors, certificate assembly, ledger, attempts."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.distributions import Normal, kl_divergence

from pacbayes import bounds
from pacbayes.attempts import OTHER_ATTEMPTS, record_attempt
from pacbayes.errors import InputError, ModelLoadError
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.stochastic import Schedule, certify_stochastic_network, stochastic_bound
from pacbayes.stochastic.certificate import certify, point_sampled_error
from pacbayes.stochastic.dropout import activation_dropout, activation_layers
from pacbayes.stochastic.gaussian import DiagonalGaussian, Layout, gaussian_kl
from pacbayes.stochastic.hint import chance_level, why_vacuous
from pacbayes.stochastic.local import resolve_mc_sampling
from pacbayes.stochastic.network import bounded_cross_entropy, logistic_surrogate, sigmoid_surrogate
from pacbayes.stochastic.prior import parameters_of, reinitialised
from pacbayes.stochastic.train import PriorVariance, fit_posterior, fit_prior_mean, surrogate_risk

FAST = Schedule(epochs=4, batch_size=50, lr=1e-3)


def dr(**settings) -> DziugaiteRoySettings:
    """The family's settings with FAST's epochs (the posterior schedule these tests pass is FAST) and per-network
    Monte Carlo draws, whose formulas most tests recompute (the per-point tests ask for "point")."""
    return DziugaiteRoySettings(posterior_epochs=FAST.epochs, **{"mc_sampling": "network", **settings})


def test_auto_sampling_draws_per_point_where_the_model_allows_it():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    batchnorm = nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 1))
    assert DziugaiteRoySettings().mc_sampling == "auto"
    assert resolve_mc_sampling("auto", mlp) == "point" and resolve_mc_sampling("auto", batchnorm) == "network"
    assert resolve_mc_sampling("network", mlp) == "network" and resolve_mc_sampling("point", batchnorm) == "point"


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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fitted(net, x, labels, steps=150) -> tuple:
    """(net trained on (x, labels), its initial state, x, labels)."""
    init = {k: v.clone() for k, v in net.state_dict().items()}
    return _train(net, x, labels, steps), init, x, labels


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(3)
    return _fitted(_net(), *_blobs(200, seed=1))


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
        stochastic_bound(net, x, labels, dr(init_state=net.state_dict(), mc_samples=2), schedule=FAST)


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
        stochastic_bound(net, x, labels, dr(init_state=init, init_seed=3, mc_samples=2), schedule=FAST)
    wrong = dict(init)
    wrong["0.weight"] = torch.zeros(3, 3)
    with pytest.raises(InputError, match="shape"):
        stochastic_bound(net, x, labels, dr(init_state=wrong, mc_samples=2), schedule=FAST)
    pickled = tmp_path / "code.pt"
    torch.save({"0.weight": Layout(("a",), ((1,),))}, pickled)  # a custom class: not weights-only
    with pytest.raises(ModelLoadError):
        stochastic_bound(net, x, labels, dr(init_state=str(pickled), mc_samples=2), schedule=FAST)


# --- the certificate ----------------------------------------------------------------------------


def test_certificate_grows_when_the_monte_carlo_budget_drops(trained):
    net, init, x, labels = trained
    few = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=3), schedule=FAST)[0]
    many = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=300), schedule=FAST)[0]
    assert few.details["kl"] == many.details["kl"]  # same posterior: only the sampling differs
    assert few.value > many.value + 0.1


def test_certificate_is_the_composition_of_the_published_bounds(trained):
    net, init, x, labels = trained
    result = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=40), schedule=FAST, delta=0.1)[0]
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
        net, x, labels, dr(init_state=init, mc_samples=40, lambda_grid=True), schedule=FAST, delta=0.1
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
    cert = certify_stochastic_network(
        net, x, labels, dr(init_state=init, mc_samples=50, objective="quad"), schedule=FAST
    )
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
    result = stochastic_bound(net, x, noise, dr(init_state=init, mc_samples=50), schedule=FAST)[0]
    assert result.value > 0.5
    assert "errs on" in result.details["why_vacuous"]  # random labels: the net's own error, not the KL


def test_same_seed_same_number_and_the_seed_matters(trained):
    net, init, x, labels = trained
    a = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=20), schedule=FAST, seed=4)[0]
    b = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=20), schedule=FAST, seed=4)[0]
    c = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=20), schedule=FAST, seed=5)[0]
    assert a.value == b.value and a.details["kl"] == b.details["kl"]
    assert c.details["kl"] != a.details["kl"]


# --- attempts -----------------------------------------------------------------------------------


def test_attempts_are_union_bounded_through_the_ledger(trained, tmp_path):
    net, init, x, labels = trained
    ledger = tmp_path / "attempts.jsonl"
    first = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=5, attempts_ledger=ledger), schedule=FAST)[
        0
    ]
    second = stochastic_bound(
        net, x, labels, dr(init_state=init, mc_samples=5, attempts_ledger=ledger), schedule=FAST, seed=1
    )[0]
    assert (first.details["attempt"], second.details["attempt"]) == (1, 2)
    assert second.delta[OTHER_ATTEMPTS] == pytest.approx(0.05 * (1 - 6 / (4 * math.pi**2)), rel=1e-12)
    assert math.fsum(second.delta.values()) == pytest.approx(0.05, rel=1e-12)
    assert len(ledger.read_text().splitlines()) == 2
    # a different data set is a different key: its count starts again at 1
    assert record_attempt(ledger, "another-key", {}) == 1
    with pytest.raises(InputError, match="not both"):
        stochastic_bound(
            net, x, labels, dr(init_state=init, mc_samples=5, attempts_ledger=ledger), schedule=FAST, attempt=3
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
    result = stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=5, fixed_mean=True), schedule=FAST)[0]
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
        mode: stochastic_bound(net, x, labels, dr(init_state=init, mc_samples=5, **options), schedule=FAST)[0]
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
        net, x, labels, dr(prior_split=0.3, mc_samples=5, objective="lambda", init_seed=0), schedule=FAST
    )[0]
    assert result.details["m"] == 140 and result.details["m_prior"] == 60
    assert result.details["prior_kind"] == "data-dependent" and result.name == "pbb-lambda"


def test_zero_prior_is_labelled_and_multiclass_models_work():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(120, 2)
    labels = torch.randint(0, 3, (120,))
    result = stochastic_bound(net, x, labels, dr(mc_samples=5, objective="classic"), schedule=FAST)[0]
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
        ({"surrogate": "hinge"}, "unknown surrogate"),
        ({"mc_sampling": "layer"}, "unknown mc_sampling"),
        ({"surrogate": "sigmoid", "sigmoid_temperature": 0.0}, "temperature"),
        ({"surrogate": "sigmoid", "sigmoid_temperature": float("nan")}, "sigmoid_temperature"),
    ],
)
def test_bad_options_are_refused(trained, options, match):
    net, init, x, labels = trained
    settings = {key: value for key, value in options.items() if key != "delta"}
    run = {key: value for key, value in options.items() if key == "delta"}
    with pytest.raises(InputError, match=match):
        stochastic_bound(net, x, labels, dr(init_state=init, **settings), schedule=FAST, **run)


def test_the_settings_are_the_familys_dataclass_and_fix_the_epochs(trained):
    net, init, x, labels = trained
    with pytest.raises(InputError, match="DziugaiteRoySettings"):
        stochastic_bound(net, x, labels, {"mc_samples": 5}, schedule=FAST)
    with pytest.raises(InputError, match="posterior_epochs=4"):  # FAST runs 4 epochs, the default settings 40
        stochastic_bound(net, x, labels, DziugaiteRoySettings(init_state=init), schedule=FAST)
    with pytest.raises(InputError, match="prior_epochs=4"):
        stochastic_bound(net, x, labels, dr(init_state=init), schedule=FAST, prior_schedule=FAST)


@pytest.mark.parametrize(
    "options",
    [
        {"epochs": 0},
        {"batch_size": 2.5},
        {"lr": 0.0},
        {"lr_var": float("nan")},
        {"optimizer": "rmsprop"},
        {"momentum": 1.0},
        {"momentum": -0.1},
        {"precision": "float16"},
    ],
)
def test_bad_schedules_are_refused(options):
    with pytest.raises(InputError):
        Schedule(**options)


def test_the_prior_and_the_sgd_posterior_take_heavy_ball_steps_with_the_schedules_momentum():
    """Two full-batch steps from the same start: w2 = w1 - lr (g(w1) + mu g(w0)), w1 = w0 - lr g(w0)."""
    torch.manual_seed(5)
    net = _net()
    x, labels = _blobs(40, seed=6)
    layout = Layout.of(parameters_of(net))
    w0 = layout.flatten(parameters_of(net))

    def grad(w, loss):
        w = w.detach().clone().requires_grad_(True)
        loss(w).backward()
        return w.grad

    def logistic(w):
        return logistic_surrogate(torch.func.functional_call(net, layout.unflatten(w), (x,))[:, 0], labels)

    lr, mu = 0.1, 0.7
    w1 = w0 - lr * grad(w0, logistic)
    expected = w1 - lr * (grad(w1, logistic) + mu * grad(w0, logistic))
    schedule = Schedule(epochs=2, batch_size=40, lr=lr, momentum=mu)
    got = fit_prior_mean(net, layout, w0, x, labels, schedule=schedule, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got, expected, atol=1e-6)

    # the posterior with optimizer "sgd", from the same draws: two steps with momentum mu differ from two
    # without by mu times the first step, in the mean and in log s
    def posterior(epochs, momentum):
        schedule = Schedule(epochs=epochs, batch_size=40, lr=0.05, lr_var=0.5, optimizer="sgd", momentum=momentum)
        fitted, _ = fit_posterior(
            net,
            layout,
            w0,
            w0,
            x,
            labels,
            objective="quad",
            delta=0.05,
            m=40,
            prior_variance=PriorVariance(1e-2, on_grid=False),
            start_variance=1e-2,
            fixed_mean=False,
            schedule=schedule,
            generator=torch.Generator().manual_seed(1),
        )
        return torch.cat([fitted.mean, fitted.log_var])

    start = torch.cat([w0, torch.full_like(w0, math.log(1e-2))])
    first = posterior(1, 0.0) - start
    assert float(first.abs().max()) > 1e-3
    assert torch.allclose(posterior(2, mu) - posterior(2, 0.0), mu * first, atol=1e-5)


def test_labels_the_model_cannot_output_are_refused(trained):
    net, init, x, labels = trained
    with pytest.raises(InputError, match="labels must lie in 0..1"):
        stochastic_bound(net, x, labels + 1, dr(init_state=init, mc_samples=2), schedule=FAST)
    with pytest.raises(InputError, match="integer class indices"):
        stochastic_bound(net, x, labels.float(), dr(init_state=init, mc_samples=2), schedule=FAST)


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
        dr(init_seed=7, prior_split=0.5, mc_samples=200, objective="quad", prior_epochs=30),
        schedule=FAST,
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
        net, x, labels, dr(init_state=far, mc_samples=20, posterior_start="model", prior_std=0.01), schedule=FAST
    )[0]
    assert result.value > 0.99 and result.details["why_vacuous"].startswith("KL = ")


# --- surrogate risks -----------------------------------------------------------------------------


def test_sigmoid_surrogate_matches_a_hand_computation_binary_and_multiclass():
    temperature = 0.3
    logits = torch.tensor([2.0, -0.5, 0.1, -3.0])
    labels = torch.tensor([1, 1, 0, 0])
    signs = [1.0, 1.0, -1.0, -1.0]
    expected = (
        sum(1.0 / (1.0 + math.exp(s * f / temperature)) for s, f in zip(signs, logits.tolist(), strict=False)) / 4
    )
    assert float(sigmoid_surrogate(logits, labels, temperature)) == pytest.approx(expected, rel=1e-6)
    many = torch.tensor([[1.0, 3.0, -2.0], [0.5, 0.2, 0.4], [-1.0, -1.0, 2.0]])
    targets = [0, 0, 2]
    margins = [
        row[y] - max(v for c, v in enumerate(row) if c != y) for row, y in zip(many.tolist(), targets, strict=False)
    ]
    expected = sum(1.0 / (1.0 + math.exp(g / temperature)) for g in margins) / 3
    assert float(sigmoid_surrogate(many, torch.tensor(targets), temperature)) == pytest.approx(expected, rel=1e-6)


def test_sigmoid_surrogate_tends_to_the_zero_one_loss_and_stays_in_zero_one():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 4, generator=gen)
    labels = torch.randint(0, 4, (500,), generator=gen)
    zero_one = float((logits.argmax(1) != labels).double().mean())
    assert float(sigmoid_surrogate(logits, labels, 1e-4)) == pytest.approx(zero_one, abs=2e-3)
    loose = float(sigmoid_surrogate(logits, labels, 10.0))
    assert 0.0 < loose < 1.0 and abs(loose - zero_one) > 0.05


def test_auto_surrogate_is_each_objectives_own_and_sigmoid_uses_its_temperature():
    assert surrogate_risk("auto", "dr") is logistic_surrogate
    assert surrogate_risk("auto", "quad") is bounded_cross_entropy
    assert surrogate_risk("logistic", "quad") is logistic_surrogate
    logits, labels = torch.tensor([0.2, -0.1]), torch.tensor([1, 1])
    cold, warm = surrogate_risk("sigmoid", "classic", 0.1), surrogate_risk("sigmoid", "classic", 1.0)
    assert float(cold(logits, labels)) == pytest.approx(float(sigmoid_surrogate(logits, labels, 0.1)), rel=1e-7)
    assert float(cold(logits, labels)) != pytest.approx(float(warm(logits, labels)), rel=1e-3)


def test_the_sigmoid_surrogate_trains_a_different_posterior_and_is_recorded(trained, tmp_path):
    net, init, x, labels = trained
    common = {"init_state": init, "objective": "classic", "mc_samples": 40}
    auto = stochastic_bound(net, x, labels, dr(**common), schedule=FAST, delta=0.1)[0]
    ledger = tmp_path / "attempts.jsonl"
    sigmoid = stochastic_bound(
        net,
        x,
        labels,
        dr(surrogate="sigmoid", sigmoid_temperature=0.2, attempts_ledger=ledger, **common),
        schedule=FAST,
        delta=0.1,
    )[0]
    assert auto.details["surrogate"] == "auto" and auto.details["sigmoid_temperature"] is None
    assert sigmoid.details["surrogate"] == "sigmoid" and sigmoid.details["sigmoid_temperature"] == 0.2
    assert sigmoid.details["kl"] != pytest.approx(auto.details["kl"], rel=1e-6)
    entry = json.loads(ledger.read_text().splitlines()[0])
    assert entry["surrogate"] == "sigmoid" and entry["sigmoid_temperature"] == 0.2
    # the certificate is the same composition whatever surrogate trained the posterior
    share = bounds.series_delta(1, 0.1) / 2
    empirical = bounds.sample_convergence_bound(sigmoid.details["sampled_error"], 40, share)
    assert sigmoid.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, sigmoid.details["kl"], 200, share))


def _certify_command(trained, tmp_path) -> list:
    """``pacbayes certify`` of the trained blob classifier with the dziugaite-roy family (2 posterior epochs, 20
    draws), its files written to ``tmp_path``."""
    net, init, x, labels = trained
    data, test = tmp_path / "blobs.npz", tmp_path / "test.npz"
    np.savez(data, x=x.numpy(), y=labels.numpy())
    x_test, labels_test = _blobs(100, seed=9)
    np.savez(test, x=x_test.numpy(), y=labels_test.numpy())
    torch.jit.script(net).save(str(tmp_path / "model.pt"))
    torch.save(init, str(tmp_path / "init.pt"))
    command = ["certify", str(tmp_path / "model.pt"), "--train", str(data), "--test", str(test), "--m", "200"]
    command += ["--bounds", "dziugaite-roy", "--init", str(tmp_path / "init.pt"), "--mc-samples", "20"]
    return command + ["--posterior-epochs", "2", "--quiet"]


def test_surrogate_flags_through_the_cli(trained, tmp_path):
    from click.testing import CliRunner

    from pacbayes.cli import main

    command = _certify_command(trained, tmp_path) + ["--surrogate", "sigmoid", "--sigmoid-temperature", "0.2"]
    run = CliRunner().invoke(main, command + ["--json"])
    assert run.exit_code == 0, run.output
    details = json.loads(run.stdout)["bounds"][0]["details"]
    assert details["surrogate"] == "sigmoid" and details["sigmoid_temperature"] == pytest.approx(0.2)


# --- training precision --------------------------------------------------------------------------


def _output_dtypes_while_training(net, x, labels, precision: str) -> set:
    """The dtypes of the Linear layers' outputs during one prior step and one posterior step at ``precision``."""
    dtypes = set()
    linear = [module for module in net if isinstance(module, nn.Linear)]
    hooks = [module.register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype)) for module in linear]
    layout = Layout.of(parameters_of(net))
    flat = layout.flatten(parameters_of(net))
    schedule = Schedule(epochs=1, batch_size=len(labels), precision=precision)
    generator = torch.Generator().manual_seed(0)
    fit_prior_mean(net, layout, flat, x, labels, schedule=schedule, generator=generator, dropout=0.2)
    fit_posterior(
        net,
        layout,
        flat,
        flat,
        x,
        labels,
        objective="quad",
        delta=0.05,
        m=len(labels),
        prior_variance=PriorVariance(1e-3, on_grid=False),
        start_variance=1e-3,
        fixed_mean=False,
        schedule=schedule,
        generator=generator,
    )
    for hook in hooks:
        hook.remove()
    return dtypes


def test_bfloat16_training_runs_the_forward_passes_in_bfloat16(trained):
    net, _init, x, labels = trained
    assert _output_dtypes_while_training(net, x, labels, "float32") == {torch.float32}
    assert _output_dtypes_while_training(net, x, labels, "bfloat16") == {torch.bfloat16}
    assert Schedule().precision == "float32" and DziugaiteRoySettings().training_precision == "float32"


def test_bfloat16_training_is_recorded_keyed_and_certified_in_float32(trained, tmp_path):
    net, init, x, labels = trained
    common = {"init_state": init, "prior_split": 0.5, "prior_epochs": FAST.epochs, "mc_samples": 40}
    half = Schedule(epochs=FAST.epochs, batch_size=FAST.batch_size, lr=FAST.lr, precision="bfloat16")
    ledger, cache = tmp_path / "attempts.jsonl", tmp_path / "cache"
    run = {"delta": 0.1, "cache_dir": cache}
    full = stochastic_bound(net, x, labels, dr(**common), schedule=FAST, **run)[0]
    bf16 = stochastic_bound(
        net, x, labels, dr(training_precision="bfloat16", attempts_ledger=ledger, **common), schedule=half, **run
    )[0]
    assert full.details["training_precision"] == "float32" and bf16.details["training_precision"] == "bfloat16"
    assert json.loads(ledger.read_text().splitlines()[0])["training_precision"] == "bfloat16"
    # another posterior (the cache keys the precision: float32's prior and posterior are not reused) ...
    assert bf16.details["kl"] != pytest.approx(full.details["kl"], rel=1e-6)
    assert bf16.details["prior"] == full.details["prior"]
    # ... of about the same quality, certified by the same float32 / float64 composition
    assert bf16.value == pytest.approx(full.value, abs=0.05)
    share = bounds.series_delta(1, 0.1) / 2
    empirical = bounds.sample_convergence_bound(bf16.details["sampled_error"], 40, share)
    assert bf16.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, bf16.details["kl"], 100, share))
    with pytest.raises(InputError, match=r"schedule has precision='float32' .*\(training_precision='float32'\)"):
        stochastic_bound(net, x, labels, dr(training_precision="bfloat16", **common), schedule=FAST)


def test_the_training_precision_flag_through_the_cli(trained, tmp_path):
    from click.testing import CliRunner

    from pacbayes.cli import main

    command = _certify_command(trained, tmp_path)
    run = CliRunner().invoke(main, command + ["--training-precision", "bfloat16", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["bounds"][0]["details"]["training_precision"] == "bfloat16"
    refused = CliRunner().invoke(main, command + ["--training-precision", "half"])
    assert refused.exit_code == 2 and "half" in refused.output


def test_the_posterior_optimiser_settings_train_record_and_key_the_posterior(trained, tmp_path):
    net, init, x, labels = trained
    common = {"init_state": init, "mc_samples": 40}
    ledger = tmp_path / "attempts.jsonl"
    pbb = {"posterior_optimizer": "sgd", "posterior_lr": 0.001, "posterior_lr_var": 0.004, "posterior_momentum": 0.95}
    sgd = stochastic_bound(net, x, labels, dr(attempts_ledger=ledger, **pbb, **common), delta=0.1)[0]
    adam = stochastic_bound(net, x, labels, dr(attempts_ledger=ledger, **common), delta=0.1)[0]
    for key, value in pbb.items():
        assert sgd.details[key] == value
    assert (adam.details["posterior_optimizer"], adam.details["posterior_lr"]) == ("adam", Schedule().lr)
    statements = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [s["posterior_optimizer"] for s in statements] == ["sgd", "adam"]
    assert statements[0]["key"] != statements[1]["key"]  # another posterior, another statement
    assert sgd.details["kl"] != pytest.approx(adam.details["kl"], rel=1e-6)
    # the settings train exactly what the equivalent explicit schedule trains
    schedule = Schedule(epochs=FAST.epochs, optimizer="sgd", lr=0.001, lr_var=0.004, momentum=0.95)
    explicit = stochastic_bound(net, x, labels, dr(**pbb, **common), delta=0.1, schedule=schedule)[0]
    assert explicit.details["kl"] == pytest.approx(sgd.details["kl"], rel=1e-12)
    # an explicit schedule keeps its optimiser where the settings are at their defaults ...
    fast = stochastic_bound(net, x, labels, dr(**common), delta=0.1, schedule=FAST)[0]
    assert fast.details["posterior_lr"] == FAST.lr
    # ... and one that contradicts a setting the user changed is refused with the fix
    with pytest.raises(InputError, match=r"schedule has optimizer='adam' .*\(posterior_optimizer='adam'\)"):
        stochastic_bound(net, x, labels, dr(posterior_optimizer="sgd", **common), schedule=FAST)


def test_the_posterior_optimiser_flags_through_the_cli(trained, tmp_path):
    from click.testing import CliRunner

    from pacbayes.cli import main

    command = _certify_command(trained, tmp_path)
    flags = ["--posterior-optimizer", "sgd", "--posterior-lr", "0.001", "--posterior-lr-var", "0.004"]
    run = CliRunner().invoke(main, command + flags + ["--posterior-momentum", "0.95", "--json"])
    assert run.exit_code == 0, run.output
    details = json.loads(run.stdout)["bounds"][0]["details"]
    recorded = (details["posterior_optimizer"], details["posterior_lr"], details["posterior_momentum"])
    assert recorded == ("sgd", 0.001, 0.95)
    refused = CliRunner().invoke(main, command + ["--posterior-optimizer", "rmsprop"])
    assert refused.exit_code == 2 and "rmsprop" in refused.output
    refused = CliRunner().invoke(main, command + ["--posterior-lr", "0"])
    assert refused.exit_code == 2 and "learning rates must be finite and > 0" in refused.output
    assert "Traceback" not in refused.output


# --- Monte Carlo draws per point -----------------------------------------------------------------


def _noisy_posterior(net, std, seed=0):
    params = parameters_of(net)
    layout = Layout.of(params)
    mean = layout.flatten(params)
    return DiagonalGaussian(mean, torch.full_like(mean, 2 * math.log(std)), layout)


def test_point_draws_of_a_linear_classifier_match_the_gaussian_error_probability():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 1))
    x, labels = _blobs(200, seed=2, flip=0.1)
    std = 0.4
    posterior = _noisy_posterior(net, std)
    w, b = net[0].weight.detach()[0].double(), float(net[0].bias.detach())
    xd = x.double()
    margin = (2.0 * labels.double() - 1.0) * (xd @ w + b)
    spread = torch.sqrt(std**2 * (xd * xd).sum(1) + std**2)
    exact = float(Normal(0.0, 1.0).cdf(-margin / spread).mean())  # P(error) per point, averaged
    estimate = point_sampled_error(net, posterior, x, labels, 400, generator=torch.Generator().manual_seed(1))
    assert estimate == pytest.approx(exact, abs=0.01)  # n m = 80,000 draws: standard error ~0.0018


def test_point_sampling_pays_for_n_m_draws_and_refuses_other_models(trained):
    net, init, x, labels = trained
    result = stochastic_bound(
        net, x, labels, dr(init_state=init, mc_samples=5, mc_sampling="point"), schedule=FAST, delta=0.1
    )[0]
    d = result.details
    assert d["mc_sampling"] == "point" and d["mc_draws"] == 5 * 200
    share = bounds.series_delta(1, 0.1) / 2
    empirical = bounds.sample_convergence_bound(d["sampled_error"], 5 * 200, share)
    assert d["empirical_error_bound"] == pytest.approx(empirical, rel=1e-12)
    assert result.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, d["kl"], 200, share), rel=1e-12)

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _net()

        def forward(self, inputs):
            return self.inner(inputs)

    custom = Custom()
    with pytest.raises(InputError, match=r"needs an nn.Sequential of Linear and .*\(got Custom\)"):
        stochastic_bound(custom, x, labels, dr(mc_samples=2, mc_sampling="point"), schedule=FAST)


def test_per_point_training_is_recorded_trains_another_posterior_and_refuses_other_models(trained):
    net, init, x, labels = trained
    common = {"init_state": init, "mc_samples": 5, "mc_sampling": "point"}
    batch = stochastic_bound(net, x, labels, dr(**common), schedule=FAST, delta=0.1)[0]
    point = stochastic_bound(net, x, labels, dr(per_point_training=True, **common), schedule=FAST, delta=0.1)[0]
    assert batch.details["per_point_training"] is False and point.details["per_point_training"] is True
    assert point.details["kl"] != pytest.approx(batch.details["kl"], rel=1e-6)
    share = bounds.series_delta(1, 0.1) / 2
    empirical = bounds.sample_convergence_bound(point.details["sampled_error"], 5 * 200, share)
    assert point.value == pytest.approx(bounds.pac_bayes_kl_bound(empirical, point.details["kl"], 200, share))
    with pytest.raises(InputError, match=r"needs an nn.Sequential of Linear and .*\(got BatchNorm1d\)"):
        stochastic_bound(
            nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)),
            x,
            labels,
            dr(per_point_training=True, mc_samples=2),
            schedule=FAST,
        )
