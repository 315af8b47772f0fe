"""certify with every bound family at once: one union bound, the CLI flags of each family."""

import json

import pytest
import torch
from click.testing import CliRunner
from tasks import MnistTask

from pacbayes.certification import CertifyOptions, certify
from pacbayes.cli import main
from pacbayes.data import load_dataset, take
from pacbayes.demo import demo_network, train_to_zero_error
from pacbayes.errors import InputError
from pacbayes.families.dziugaite_roy import DziugaiteRoySettings
from pacbayes.families.subspace import SubspaceSettings
from pacbayes.subspace import save_subspace_model, train_subspace_model

M = 100
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=300, seed=2, width=WIDTH)


FAST_STOCHASTIC = DziugaiteRoySettings(mc_samples=40, test_draws=5)


def test_all_families_share_one_union_bound(data, trained):
    train, test = data
    options = CertifyOptions(
        bounds=("marginal", "dziugaite-roy", "subspace"),
        delta=0.05,
        seed=2,
        dziugaite_roy=FAST_STOCHASTIC,
        subspace=SubspaceSettings(dim=40),
    )
    report = certify(trained, train, test, options)
    names = [b.name for b in report.bounds]
    assert names == ["marginal-ep", "marginal-certified", "dziugaite-roy", "subspace"]
    spent = sum(
        value
        for family, entry in report.delta_ledger.items()
        for value in (entry.values() if isinstance(entry, dict) else [entry])
    )
    assert spent <= 0.05 * (1 + 1e-12)
    for family in ("marginal", "dziugaite-roy", "subspace"):
        assert sum(report.delta_ledger[family].values()) == pytest.approx(0.05 / 4, rel=1e-9)
    by_name = {b.name: b for b in report.bounds}
    assert by_name["dziugaite-roy"].value >= by_name["dziugaite-roy"].details["sampled_error"]
    assert by_name["subspace"].value >= report.baselines["subspace_train_error"]
    assert 0.0 <= report.baselines["stochastic_test_error"] <= 1.0
    assert "stochastic network" in by_name["dziugaite-roy"].certifies
    assert "compressed model" in by_name["subspace"].certifies


def test_subspace_file_as_model_through_the_cli(data, tmp_path):
    train, _ = data
    compressed = train_subspace_model(
        demo_network(width=WIDTH), train.x, train.labels, SubspaceSettings(dim=40), seed=2
    )
    path = tmp_path / "compressed.pt"
    save_subspace_model(compressed, str(path))
    args = [
        "certify",
        str(path),
        "--bounds",
        "subspace",
        "--m",
        str(M),
        "--seed",
        "2",
        "--json",
        "--quiet",
        "--architecture",
        "pacbayes.demo:demo_network",
        "--kwargs",
        json.dumps({"width": WIDTH}),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["bounds"][0]["name"] == "subspace"
    # the model measured is the decoded compressed model itself
    assert payload["train_error"] == pytest.approx(payload["baselines"]["subspace_train_error"])
    missing = CliRunner().invoke(main, args[: args.index("--architecture")])
    assert missing.exit_code == 2 and "--architecture" in missing.stderr
    retrain = CliRunner().invoke(main, [*args, "--subspace-prior-split", "0.5", "--subspace-qat-epochs", "3"])
    assert retrain.exit_code == 2 and "--subspace-qat-epochs, --subspace-prior-split" in retrain.stderr


def test_dziugaite_roy_flags_through_the_cli(data, tmp_path):
    train, _ = data
    torch.manual_seed(5)
    model = demo_network(width=WIDTH)
    init = tmp_path / "init.pt"
    torch.save(model.state_dict(), str(init))
    train_to_zero_error(model, train, seed=5, quiet=True)
    path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(path))
    args = [
        "certify",
        str(path),
        "--bounds",
        "dziugaite-roy",
        "--m",
        str(M),
        "--seed",
        "2",
        "--init",
        str(init),
        "--mc-samples",
        "30",
        "--objective",
        "quad",
        "--json",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["bounds"][0]
    assert entry["name"] == "pbb-quad" and entry["certified"]
    assert entry["details"]["mc_samples"] == 30


def test_multi_class_model_gets_the_other_families_and_an_untrained_one_not_marginal():
    train = take(load_dataset("mnist-embedded", split="train"), 120, seed=0)
    test = take(load_dataset("mnist-embedded", split="test"), 200, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    options = CertifyOptions(bounds=("dziugaite-roy",), dziugaite_roy=FAST_STOCHASTIC)
    report = certify(model, train, test, options)
    assert report.model["outputs"] == 10 and report.bounds[0].certified
    with pytest.raises(InputError, match="zero training error"):  # the C-class marginal bound is realisable
        certify(model, train, test, CertifyOptions(bounds=("marginal",)))


def test_subspace_without_a_file_or_dimension_is_refused(data, trained):
    with pytest.raises(InputError, match="subspace-dim"):
        certify(trained, *data, CertifyOptions(bounds=("subspace",)))


def test_dziugaite_roy_modes_and_prior_flags_through_the_cli(data, tmp_path):
    train, _ = data
    torch.manual_seed(6)
    model = demo_network(width=WIDTH)
    init = tmp_path / "init.pt"
    torch.save(model.state_dict(), str(init))
    train_to_zero_error(model, train, seed=6, quiet=True)
    path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(path))
    common = ["certify", str(path), "--bounds", "dziugaite-roy", "--m", str(M), "--init", str(init)]
    common += ["--mc-samples", "20", "--posterior-epochs", "2", "--json", "--quiet"]
    around = CliRunner().invoke(main, common + ["--posterior-start", "model", "--lambda-grid"])
    assert around.exit_code == 0, around.output
    details = json.loads(around.stdout)["bounds"][0]["details"]
    assert details["mode"] == "around-model" and details["lambda_search"] == "grid" and details["grid_index"] >= 1
    learned = CliRunner().invoke(
        main, common + ["--prior-split", "0.5", "--prior-epochs", "3", "--prior-dropout", "0.1", "--prior-std", "0.02"]
    )
    assert learned.exit_code == 0, learned.output
    entry = json.loads(learned.stdout)["bounds"][0]
    details = entry["details"]
    assert details["mode"] == "learned-from-prior" and details["prior_kind"] == "data-dependent"
    assert details["prior_std"] == pytest.approx(0.02) and details["grid_index"] is None
    assert "3 epochs, dropout 0.1" in details["prior"] and details["m"] == M // 2
    assert "lambda_grid_other_points" not in entry["delta"]
