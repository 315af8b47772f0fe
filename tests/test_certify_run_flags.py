"""certify's run-wide flags: --max-minutes refuses before any work, --cache-dir resumes long phases."""

import json

import pytest
import torch
from click.testing import CliRunner

from pacbayes.cli import main
from pacbayes.data import binarise, load_dataset, take
from pacbayes.demo import demo_network, train_to_zero_error

STOCHASTIC = ("--prior-split", "0.5", "--prior-epochs", "2", "--posterior-epochs", "2", "--mc-samples", "20")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flags")
    torch.manual_seed(0)
    model = demo_network(width=16)
    train_to_zero_error(model, take(binarise(load_dataset("mnist-embedded", split="train")), 40, seed=0), quiet=True)
    path = folder / "model.pt"
    torch.jit.script(model).save(str(path))
    return str(path)


def certify(model_file, *args):
    return CliRunner().invoke(main, ["certify", model_file, "--m", "40", "--seed", "0", *args])


def test_max_minutes_refuses_before_any_work_in_one_line(model_file, monkeypatch):
    import pacbayes.families.marginal as marginal

    monkeypatch.setattr(marginal, "marginal_bounds", lambda *a, **k: pytest.fail("the family ran"))
    result = certify(model_file, "--max-minutes", "0.00001")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("pacbayes: error:") and "--max-minutes" in lines[-1]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_max_minutes_must_be_positive(model_file, value):
    result = certify(model_file, "--max-minutes", value)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cache_dir_that_is_a_file_is_refused(model_file, tmp_path):
    (tmp_path / "file").write_text("x")
    result = certify(model_file, "--bounds", "dziugaite-roy", "--cache-dir", str(tmp_path / "file"), "--quiet")
    assert result.exit_code == 2 and "--cache-dir" in result.stderr


def test_cache_dir_resumes_and_certifies_the_same_numbers(model_file, tmp_path):
    cache = tmp_path / "cache"
    args = ("--bounds", "dziugaite-roy", *STOCHASTIC, "--cache-dir", str(cache), "--quiet", "--json")
    first = certify(model_file, *args)
    assert first.exit_code == 0, first.output
    stored = sorted(p.name.split("-")[1] for p in cache.iterdir())
    assert "prior" in stored and "posterior" in stored
    second = certify(model_file, *args)
    assert second.exit_code == 0, second.output
    bounds = [json.loads(r.stdout)["bounds"] for r in (first, second)]
    assert [(b["name"], b["value"]) for b in bounds[0]] == [(b["name"], b["value"]) for b in bounds[1]]
