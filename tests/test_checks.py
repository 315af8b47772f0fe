"""pacbayes.checks: one definition of an integer, a number, a count and a flag, shared by options and the API."""

import dataclasses

import numpy as np
import pytest

from pacbayes import checks
from pacbayes.errors import InputError
from pacbayes.options import checked_value, option


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_an_integer_is_a_python_or_numpy_integer(value):
    assert checks.integer(value, "n") == 3 and type(checks.integer(value, "n")) is int


@pytest.mark.parametrize("value", [True, 3.0, np.float64(3.0), "3", None, [3]])
def test_bools_floats_and_text_are_not_integers(value):
    with pytest.raises(InputError, match="n must be an integer, got"):
        checks.integer(value, "n")


def test_integer_ranges_and_none():
    assert checks.integer(None, "n", optional=True) is None
    assert checks.positive_integer(1, "n") == 1 and checks.integer_at_least(0, "n", 0) == 0
    for call, message in [
        (lambda: checks.positive_integer(0, "n"), "n must be an integer >= 1, got 0"),
        (lambda: checks.integer(6, "n", minimum=0, maximum=5), r"n must be an integer in \[0, 5\], got 6"),
        (lambda: checks.integer(6, "n", maximum=5), "n must be an integer <= 5, got 6"),
        (lambda: checks.integer("x", "n", optional=True), "n must be an integer or None, got 'x' \\(str\\)"),
    ]:
        with pytest.raises(InputError, match=message):
            call()


def test_a_count_also_takes_a_float_holding_a_whole_number():
    assert checks.sample_size(1e4) == 10_000 and checks.sample_size(np.int64(9)) == 9
    for value in (True, 2.5, float("nan"), "10"):
        with pytest.raises(InputError, match="m must be an integer"):
            checks.sample_size(value)


def test_a_number_is_what_float_takes_except_bools_and_text():
    assert checks.number(np.float32(0.5), "x") == 0.5 and checks.number(np.array(2.0), "x") == 2.0
    assert checks.finite(3, "x") == 3.0 and checks.probability(1, "p") == 1.0
    for value in (True, "0.5", b"0.5", None, [0.5]):
        with pytest.raises(InputError, match="x must be a number"):
            checks.number(value, "x")
    with pytest.raises(InputError, match="finite"):
        checks.finite(float("inf"), "x")
    assert checks.finite(1.0, "x", low=0.0, high=1.0) == 1.0
    with pytest.raises(InputError, match=r"x must lie in \(0.0, 1.0\), got 1.0"):
        checks.finite(1.0, "x", low=0.0, high=1.0, open_low=True, open_high=True)


def test_a_flag_is_true_or_false():
    assert checks.flag(False, "f") is False
    for value in (0, 1, "true", None):
        with pytest.raises(InputError, match="f must be True or False"):
            checks.flag(value, "f")


@dataclasses.dataclass(frozen=True)
class Settings:
    count: int = option(1, "--count", "a count", limits=(1, None))
    rate: float = option(0.5, "--rate", "a rate")
    grid: tuple = option((1.0,), "--grid", "a grid")
    on: bool = option(False, "--on", "a switch")


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def test_settings_values_are_checked_by_the_same_primitives():
    assert checked_value(FIELDS["count"], np.int64(2), "count") == 2
    assert checked_value(FIELDS["rate"], np.float32(0.25), "rate") == 0.25
    assert checked_value(FIELDS["grid"], [1, 2.5], "grid") == (1.0, 2.5)
    for field, value, message in [
        ("count", 2.0, "count must be an integer"),
        ("count", True, "count must be an integer"),
        ("count", 0, "count must be at least 1"),
        ("rate", True, "rate must be a finite number"),
        ("rate", float("nan"), "rate must be a finite number"),
        ("grid", [1.0, "x"], "grid must be a list of finite numbers"),
        ("on", 1, "on must be True or False"),
    ]:
        with pytest.raises(InputError, match=message):
            checked_value(FIELDS[field], value, field)
