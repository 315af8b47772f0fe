"""Each example's --quick mode runs end to end, prints its numbers and writes its PNG."""

import json
import math
import types

import numpy as np
import pytest
import torch
from scripts import load_script

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def example(name):
    return load_script(f"examples/{name}.py")


def test_sgd_bayes_quick(tmp_path, capsys):
    out = tmp_path / "sgd.png"
    result = example("sgd_bayes").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    for name, block in result["result"]["targets"].items():
        assert block["sgd"]["failed"] == 0 and sum(block["sgd"]["counts"].values()) == 500, name
        for low, high in block["certified"].values():
            assert low <= high <= 0.0
        ps = block["accepted"] / 320_000
        assert ps < 50 * math.exp(block["ep_log_ps"]) + 1e-4  # rejection and EP agree on P(S)'s scale
    assert "Pearson r" in capsys.readouterr().out


def test_sgd_bayes_helpers_against_brute_force():
    sb = example("sgd_bayes")
    counts = {b"a": 3, b"b": 1, b"c": 2}
    samples = [k for k, c in counts.items() for _ in range(c)]
    pairs = [(i, j) for i in range(6) for j in range(6) if i != j]
    brute = sum(samples[i] == samples[j] for i, j in pairs) / len(pairs)
    assert sb.collision_probability(counts) == pytest.approx(brute)
    labels = torch.tensor([True, False, True, True, False, False, True, False, True])
    key = bytes(np.packbits(labels.numpy()))
    assert torch.equal(sb.key_signs(key, 9) > 0, labels)
    assert sb.test_error(key, ~labels) == 1.0 and sb.test_error(key, labels) == 0.0


def test_double_descent_quick(tmp_path, capsys):
    out = tmp_path / "dd.png"
    rows = example("double_descent").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    narrow, wide = rows
    assert narrow["train_error"] > 0 and "marginal-certified" not in narrow["bounds"]  # cannot interpolate
    assert wide["train_error"] == 0 and "marginal-certified" in wide["bounds"]
    for row in rows:
        assert {"dziugaite-roy", "subspace"} <= set(row["bounds"])
        assert all(0.0 <= value <= 1.0 for value in row["bounds"].values())
    assert "width" in capsys.readouterr().out


def test_label_corruption_quick(tmp_path):
    out = tmp_path / "lc.png"
    rows = example("label_corruption").main(["--quick", "--quiet", "--out", str(out)])
    assert out.stat().st_size > 10_000
    clean, noisy = rows
    assert noisy["log_evidence_certified"] < clean["log_evidence_certified"]  # corrupted labels: a smaller P(S)
    assert noisy["bound_certified"] > clean["bound_certified"]


def test_simplicity_bias_quick(tmp_path):
    out = tmp_path / "sb.png"
    results = example("simplicity_bias").main(["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000 and sorted(results) == [2, 3]


def mcallester_closed_form(log_evidence: float, m: int, delta: float) -> float:
    """Valle-Pérez et al.'s form by hand: -ln(1 - eps) = (ln 1/P(S) + 2 ln m + 1 + ln 1/delta) / m."""
    return 1.0 - math.exp(-(-log_evidence + 2.0 * math.log(m) + 1.0 + math.log(1.0 / delta)) / m)


@pytest.fixture(scope="module")
def field_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("field")
    torch.set_num_threads(1)
    return out, example("field_table").main(["--quick", "--out-dir", str(out)])


def test_field_table_quick_certifies_every_architecture(field_table):
    out, rows = field_table
    assert [r["architecture"] for r in rows] == ["fc", "cnn", "cnn-bn-maxpool", "resnet"]
    assert all(r["certified"] and 0.0 < r["certified_bound"] <= 1.0 for r in rows)
    assert all(r["ep_bound"] <= r["certified_bound"] for r in rows)  # the certified ln P(S) lies below EP's
    kinds = {r["architecture"]: r["kernel"] for r in rows}
    assert kinds["cnn-bn-maxpool"] == "monte-carlo" and kinds["fc"] != "monte-carlo"
    assert (out / "field_table.png").stat().st_size > 10_000
    assert len((out / "field_table.csv").read_text().splitlines()) == len(rows) + 1


def test_field_table_authors_form_matches_the_closed_form(field_table):
    _, rows = field_table
    for row in rows:
        expected = mcallester_closed_form(row["log_evidence_ep"], row["m"], 2.0**-10)
        assert row["authors_ep_bound"] == pytest.approx(expected, rel=1e-12)
        assert row["authors_certified_bound"] > row["authors_ep_bound"]  # a smaller delta and a lower ln P(S)


def test_field_table_skips_a_network_that_does_not_fit_and_names_it(tmp_path, monkeypatch, capsys, field_table):
    """A row whose SGD stops short of zero training error is left out and named; the table keeps the others."""
    _, rows = field_table
    module = example("field_table")

    def run_case(dataset, specs, architecture, build, **kwargs):
        if architecture == "cnn":
            raise module.NotFitted("VallePerezCnn did not reach zero training error in 1 epochs")
        return next(r for r in rows if r["architecture"] == architecture)

    monkeypatch.setattr(module, "run_case", run_case)
    kept = module.main(["--quick", "--architectures", "fc,cnn,resnet", "--out-dir", str(tmp_path)])
    assert [r["architecture"] for r in kept] == ["fc", "resnet"]
    assert "not in the table: digits cnn m=60 c=0: VallePerezCnn did not reach zero" in capsys.readouterr().out
    assert len((tmp_path / "field_table.csv").read_text().splitlines()) == 3


def test_field_table_joins_the_rows_of_earlier_runs(tmp_path, capsys, field_table):
    """--from-rows writes the table, rho and figure of rows from several runs as one run would, and refuses a
    row given twice or an output that would overwrite an input."""
    out, rows = field_table
    module = example("field_table")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(rows[:2]))
    second.write_text(json.dumps(rows[2:]))
    joined = module.main(["--from-rows", str(first), str(second), "--out-dir", str(tmp_path / "joined")])
    assert joined == rows
    printed = capsys.readouterr().out
    rho = module.spearman(rows, "certified_bound", "sgd_test_error")
    assert f"Spearman rho (certified bound, test error) = {rho:.3f} over {len(rows)} rows" in printed
    against_q_star = module.spearman(rows, "certified_bound", "q_star_test_error")
    assert f"against Q*'s test error (what the bound is about): {against_q_star:.3f}" in printed
    assert f"within digits ({len(rows)} rows): {rho:.3f}" in printed
    assert json.loads((tmp_path / "joined" / "field_table.json").read_text()) == rows
    assert (tmp_path / "joined" / "field_table.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        module.main(["--from-rows", str(first), str(first), "--out-dir", str(tmp_path / "again")])
    assert "is in both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--from-rows", str(out / "field_table.json"), "--out-dir", str(out)])
    assert "would overwrite the rows" in capsys.readouterr().err
    for broken in ([{k: v for k, v in rows[0].items() if k != "q_star_test_error"}], [{**rows[0], "m": "many"}]):
        first.write_text(json.dumps(broken))
        with pytest.raises(SystemExit):
            module.main(["--from-rows", str(first), "--out-dir", str(tmp_path / "broken")])
        assert "holds no complete field-table rows" in capsys.readouterr().err


def test_field_table_passes_the_kernel_projection_to_certify(tmp_path, field_table):
    """--kernel-projection reaches the Monte Carlo kernel and the row records it (None without it)."""
    _, rows = field_table
    module = example("field_table")
    argv = ["--quick", "--architectures", "cnn-bn-maxpool", "--kernel-projection", "4", "--out-dir", str(tmp_path)]
    (row,) = module.main(argv)
    assert row["kernel_projection"] == 4 and row["certified"] and row["kernel"] == "monte-carlo"
    assert all(r["kernel_projection"] is None for r in rows)


def test_field_table_gives_up_a_learning_rate_once_the_relus_are_dead():
    """A network whose ReLUs are dead on every training point (its output constant) is given up after
    DEAD_EPOCHS epochs, not after max_epochs; one that merely fits slowly is not."""
    module = example("field_table")
    data = types.SimpleNamespace(
        x=torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), labels=torch.arange(40) % 2
    )
    dead = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        dead[0].weight.zero_()
        dead[0].bias.fill_(-1.0)
    with pytest.raises(
        module.NotFitted,
        match=f"for {module.DEAD_EPOCHS} epochs \\(dead ReLUs\\), stopped at epoch {module.DEAD_EPOCHS}",
    ):
        module.train_sgd(dead, data, seed=0, lr=0.01, max_epochs=500)
    alive = torch.nn.Linear(3, 1)
    with pytest.raises(module.NotFitted, match="in 30 epochs"):  # labels no line separates: it runs to the end
        module.train_sgd(alive, data, seed=0, lr=0.01, max_epochs=30)


def test_field_table_retries_sgd_at_a_lower_rate_from_the_same_initialisation(monkeypatch):
    """A network that does not fit at the first learning rate is retrained from its initial weights at the next."""
    module = example("field_table")
    model = torch.nn.Linear(3, 1)
    initial = model.weight.detach().clone()
    seen = []

    def train_sgd(model, data, *, seed, lr, max_epochs, quiet):
        seen.append((lr, model.weight.detach().clone()))
        with torch.no_grad():
            model.weight.add_(1.0)  # training moves the weights, whether or not it fits
        if lr == module.LEARNING_RATES[0]:
            raise module.NotFitted("diverged")
        return 7

    monkeypatch.setattr(module, "train_sgd", train_sgd)
    assert module.fit_sgd(model, None, seed=0, max_epochs=3) == module.LEARNING_RATES[1]
    assert [lr for lr, _ in seen] == list(module.LEARNING_RATES[:2])
    assert all(torch.equal(weights, initial) for _, weights in seen)

    with pytest.raises(module.NotFitted, match="in 3 epochs at lr 0.01$"):
        module.fit_sgd(model, None, seed=0, max_epochs=3, rates=(0.01,))


def test_field_table_takes_its_learning_rates_from_the_command_line(capsys):
    module = example("field_table")
    args = module.parse(["--data-root", "DATA", "--learning-rates", "0.001"])
    assert args.learning_rates == (0.001,)
    assert module.parse(["--data-root", "DATA"]).learning_rates == module.LEARNING_RATES
    for bad in ("0", "x", "0.01,-1", ""):
        with pytest.raises(SystemExit) as stop:
            module.parse(["--data-root", "DATA", "--learning-rates", bad])
        assert stop.value.code == 2
        assert "positive learning rates" in capsys.readouterr().err
