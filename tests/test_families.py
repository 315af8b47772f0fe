"""The family contract: the registry, and a new family as one module + one formula + one registry line."""

import dataclasses
import math
from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner
from tasks import MnistTask

from pacbayes.bounds import kl_inverse_upper
from pacbayes.certification import CertifyOptions, certify
from pacbayes.cli import family_options
from pacbayes.families import FAMILIES, Baseline, BoundFamily, FamilyBase, FamilyOutcome, cli_fields, option, stamped
from pacbayes.report import render_text
from pacbayes.results import BoundResult
from pacbayes.testing import family_bound

M = 60
WIDTH = 32


@pytest.fixture(scope="module")
def task():
    return MnistTask(m=M, n_test=300, seed=2, width=WIDTH)


def test_every_registered_family_honours_the_contract():
    assert list(FAMILIES) == ["marginal", "dziugaite-roy", "subspace"]
    for name, family in FAMILIES.items():
        assert isinstance(family, BoundFamily) and isinstance(family, FamilyBase)
        assert family.name == name and family.classifier and family.certifies
        defaults = family.settings_type()
        with pytest.raises(dataclasses.FrozenInstanceError):
            defaults.__setattr__(cli_fields(family.settings_type)[0].name, None)  # frozen
        assert all(f.metadata["cli"].flag.startswith("--") for f in cli_fields(family.settings_type))


# ---------------------------------------------------------------- a toy fourth family, end to end
def constant_classifier_bound(train_error: float, m: int, delta: float) -> float:
    """Occam's bound for the better of the two constant classifiers: kl^-1(err, (ln 2 + ln 1/delta) / m)."""
    return kl_inverse_upper(train_error, (math.log(2.0) + math.log(1.0 / delta)) / m)


@dataclass(frozen=True)
class ConstantSettings:
    scale: float = option(1.0, "--constant-scale", "A toy option (unused by the bound).")


class ConstantFamily(FamilyBase):
    name = "constant"
    settings_type = ConstantSettings
    classifier = "constant-classifier"

    def run(self, model, train, test, *, delta, settings, context):
        ones = float(train.labels.float().mean())
        error = min(ones, 1.0 - ones)
        result = BoundResult(
            name="constant",
            value=constant_classifier_bound(error, len(train), delta),
            certified=True,
            certifies="the better constant classifier",
            delta={"occam": delta},
        )
        return FamilyOutcome(
            bounds=stamped([result], self),
            diagnostics={"train_error": error},
            baselines=(Baseline("constant_train_error", error, "constant classifier train error"),),
        )


def test_a_new_family_is_one_module_and_one_registry_line(data, trained, monkeypatch):
    monkeypatch.setitem(FAMILIES, "constant", ConstantFamily())  # the one registry line
    train, test = data
    report = certify(trained, train, test, CertifyOptions(bounds=("marginal", "constant")))
    constant = next(b for b in report.bounds if b.name == "constant")
    assert constant.family == "constant" and constant.classifier == "constant-classifier"
    share = report.delta_ledger["constant"]["occam"]
    assert share == pytest.approx(0.05 / 3)  # marginal, constant, hold-out
    error = report.baselines["constant_train_error"]
    assert constant.value == pytest.approx(constant_classifier_bound(error, M, share))
    assert "constant classifier train error" in render_text(report)
    assert report.certified_by_family()["constant"] is constant
    assert family_bound(report.to_dict(), "constant")["value"] == constant.value
    # its flags come from its settings dataclass
    command = family_options(click.command()(lambda **values: click.echo(values["constant_scale"])))
    assert CliRunner().invoke(command, ["--constant-scale", "2.5"]).output.strip() == "2.5"


def test_public_api_is_curated_and_lazy():
    import subprocess
    import sys

    import pacbayes

    code = "import sys, pacbayes; assert 'torch' not in sys.modules; print(sorted(pacbayes.__all__))"
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "certify" in listed and not any(name.startswith("_") and name != "__version__" for name in pacbayes.__all__)
    assert pacbayes.certify is certify  # the function itself, not a module
    for name in pacbayes.__all__:
        assert getattr(pacbayes, name) is not None


def test_the_settings_load_without_torch():
    """The CLI builds its flags from the families' settings before it loads torch."""
    import subprocess
    import sys

    code = "import sys, pacbayes.families.settings; assert 'torch' not in sys.modules, sorted(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_certify_options_hold_each_built_in_familys_settings():
    from dataclasses import fields, replace

    from pacbayes.certification import FAMILY_FIELDS
    from pacbayes.families import SETTINGS, settings_attribute

    types = {f.name: f.type for f in fields(CertifyOptions)}
    assert FAMILY_FIELDS == tuple(settings_attribute(name) for name in SETTINGS)
    for name, settings_type in SETTINGS.items():
        assert types[settings_attribute(name)] is settings_type
        assert CertifyOptions().settings_for(name) == settings_type()
    changed = replace(CertifyOptions(), subspace=SETTINGS["subspace"](dim=7))
    assert changed.settings_for("subspace").dim == 7 and changed.settings_for("marginal") == SETTINGS["marginal"]()
