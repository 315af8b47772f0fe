"""Option types and value syntax shared by the commands: finite numbers, seeds, devices, data specs, lists.

Torch-free: the flags are built at start-up, and ``pacbayes --version``, ``--help`` and ``bound`` never load torch.
"""

import json
import math
from typing import Any

import click

from pacbayes.arguments import MAX_SEED
from pacbayes.checks import parsed
from pacbayes.errors import PacBayesError


class FiniteFloat(click.ParamType[float]):
    """A float option that must be finite: ``nan`` or ``inf`` never reaches a gate or a computation."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {value}", param, ctx)
        return number


FINITE = FiniteFloat()
SEED = click.IntRange(0, MAX_SEED)
"""A seed option: torch's generators take 0 <= seed < 2^63."""


class DeviceName(click.ParamType[str]):
    """A ``--device`` option: a device type pacbayes computes on (cpu, cuda[:i]) that exists on this machine,
    checked while the command line is parsed, before any work."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from pacbayes.device import resolve_device

        try:
            resolve_device(value)
        except PacBayesError as err:
            self.fail(str(err), param, ctx)
        return str(value)


DEVICE = DeviceName()

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
quiet_option = click.option("--quiet", is_flag=True, help="Silence progress bars.")
cache_dir_option = click.option(
    "--cache-dir",
    default=None,
    help="Keep the results of long phases (marginal kernel and EP; Dziugaite-Roy learned prior, posterior and "
    "Monte Carlo error; subspace origin, fit and chosen candidate) here, keyed by a SHA-256 of their exact inputs: "
    "a rerun or a resumed run reads them and certifies the same numbers.",
)
max_minutes_option = click.option(
    "--max-minutes",
    type=FINITE,
    default=None,
    help="Refuse, before any work, a run whose phases are expected (from timed probes on this machine) to take "
    "longer than this; the message names the longest phases and cheaper settings.",
)


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """``NAME_OR_PATH[:train|:test]`` -> (name or path, split or None)."""
    name, _, split = spec.rpartition(":")
    return (name, split) if split in ("train", "test") and name else (spec, None)


def load_data_spec(spec: str) -> Any:
    """``NAME_OR_PATH[:train|:test]`` -> a pacbayes.data.Dataset (e.g. ``mnist-embedded:train``)."""
    from pacbayes.data import load_dataset

    name, split = parse_data_spec(spec)
    return load_dataset(name, split=split)


def data_path(spec: str | None) -> str | None:
    """The file or folder a data spec reads (None for none given)."""
    return None if spec is None else parse_data_spec(spec)[0]


def parse_json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    """The JSON object given to ``flag`` (None for none given)."""
    if text is None:
        return None
    try:
        value = parsed(json.loads, text, flag)
    except json.JSONDecodeError as err:
        raise PacBayesError(f"{flag} must be a JSON object, e.g. '{{\"width\": 512}}': {err.msg}") from err
    if not isinstance(value, dict):
        raise PacBayesError(f"{flag} must be a JSON object, e.g. '{{\"width\": 512}}'")
    return value


def parse_float_list(text: str | None, flag: str) -> tuple[float, ...]:
    """Ascending finite numbers >= 0, comma-separated (() for none given)."""
    if text is None:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise PacBayesError(f"{flag} must be comma-separated numbers, e.g. 1e-6,1e-4,1e-2") from err
    if not all(math.isfinite(v) and v >= 0 for v in values) or list(values) != sorted(values):
        raise PacBayesError(f"{flag} must be ascending finite numbers >= 0, e.g. 1e-6,1e-4,1e-2")
    return values


def parse_int_list(text: str | None, flag: str) -> tuple[int, ...] | None:
    """Comma-separated integers as a tuple (None for none given)."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise PacBayesError(f"{flag} must be comma-separated integers, e.g. 0,1,2,3,4") from err


def parse_sigma_b(text: str) -> float | list[float]:
    """``--sigma-b``: one bias std, or one per linear layer (first layer first)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as err:
        raise PacBayesError(
            f"--sigma-b must be a number or comma-separated numbers (one per linear "
            f"layer, first layer first), got {text!r}"
        ) from err
    if not all(math.isfinite(v) for v in values):
        raise PacBayesError(f"--sigma-b must be finite numbers, got {text!r}")
    return values[0] if len(values) == 1 else values
