"""The ``pacbayes`` command line: thin click commands over the library.

Every command prints a human-readable result, or one JSON object on stdout with ``--json``.
Bad input exits with status 2 and one line on stderr (``pacbayes: error: ...``), no traceback.
"""

import json
import math
import os
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from dataclasses import replace

INTERRUPTED = "pacbayes: interrupted"


def _exit_interrupted(signum, frame) -> None:
    os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


@contextmanager
def _exit_on_interrupt():
    """While the command line loads (numpy and click), Ctrl-C prints one line and exits with status 130 at
    once: a KeyboardInterrupt raised inside third-party import code can resurface as another error."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


with _exit_on_interrupt():
    import click

    from pacbayes import __version__
    from pacbayes.arguments import (
        MAX_SEED,
        check_not_an_input,
        check_output_dir,
        check_output_path,
        names,
        open_regular,
        regular_file,
    )
    from pacbayes.checks import parsed
    from pacbayes.errors import PacBayesError, PacBayesWarning
    from pacbayes.families import cli_fields, settings_from_keys, settings_types
    from pacbayes.bounds import MARGINAL_VARIANTS
    from pacbayes.defaults import ANALYTIC_ACTIVATIONS, DEFAULT_PROPOSAL, EP_TOL, PROPOSALS
    from pacbayes.defaults import EVIDENCE_SAMPLES as DEFAULT_SAMPLES
    from pacbayes.options import check_limits, value_kind
    # Only torch-free modules above: the flags are built from them at start-up, and `pacbayes --version`,
    # `--help` and `bound` never load torch. Each command imports what it computes with.


class _Interrupted(Exception):
    """Ctrl-C inside a command (click would turn a KeyboardInterrupt into a plain Abort)."""


class _OneLineErrors(click.Group):
    """A click group whose usage and input errors are one line on stderr with exit status 2;
    Ctrl-C (SIGINT) is one line ``pacbayes: interrupted`` with exit status 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(self, args=None, prog_name=None, **extra):
        warnings.showwarning = _show_warning
        try:
            code = super().main(args=args, prog_name=prog_name or "pacbayes", standalone_mode=False, **extra)
        except click.exceptions.Exit as stop:
            code = stop.exit_code
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except (_Interrupted, KeyboardInterrupt):
            _interrupted()
        except click.Abort as err:
            if isinstance(err.__cause__, KeyboardInterrupt):
                _interrupted()
            _fail("aborted", 1)
        except PacBayesError as err:
            _fail(str(err), 2)
        except OSError as err:  # a file that vanished or a disk that filled up mid-command
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            _fail(f"{err.strerror or err}{where}; check the paths given and the free space", 2)
        sys.exit(code if isinstance(code, int) else 0)


_python_show_warning = warnings.showwarning


_third_party_warnings = False
"""Whether warnings of other packages (torch's FutureWarnings, ...) reach stderr: the main group's --verbose."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """pacbayes's own warnings as one line ``pacbayes: warning: ...`` on stderr; its other warning classes as
    Python shows them; warnings of other packages only with ``--verbose`` (they interrupt progress output
    and are not the user's to act on)."""
    if issubclass(category, PacBayesWarning):
        click.echo("pacbayes: warning: " + " ".join(str(message).split()), err=True)
    elif _third_party_warnings or category.__module__.partition(".")[0] == "pacbayes":
        _python_show_warning(message, category, filename, lineno, file, line)


def _interrupted() -> None:
    click.echo(INTERRUPTED, err=True)
    sys.exit(130)


def _fail(message: str, code: int) -> None:
    click.echo("pacbayes: error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def emit(payload: dict, as_json: bool, text: str) -> None:
    """Print ``payload`` as one JSON object (``--json``) or ``text`` for people.

    JSON has no inf or NaN: such values are printed as null and listed under ``notes``
    (:func:`pacbayes.report.json_safe`, the same rule as the ``--out`` file)."""
    from pacbayes.report import json_safe

    if as_json:
        click.echo(json.dumps(json_safe(payload), allow_nan=False))
    else:
        click.echo(text)


class FiniteFloat(click.ParamType):
    """A float option that must be finite: ``nan`` or ``inf`` never reaches a gate or a computation."""

    name = "number"

    def convert(self, value, param, ctx):
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


class DeviceName(click.ParamType):
    """A ``--device`` option: a device type pacbayes computes on (cpu, cuda[:i]) that exists on this machine,
    checked while the command line is parsed, before any work."""

    name = "device"

    def convert(self, value, param, ctx):
        from pacbayes.device import resolve_device

        try:
            resolve_device(value)
        except PacBayesError as err:
            self.fail(str(err), param, ctx)
        return value


DEVICE = DeviceName()


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group(cls=_OneLineErrors)
@click.version_option(__version__, prog_name="pacbayes")
@click.option("--verbose", is_flag=True, help="Also show other packages' warnings (torch's, ...).")
def main(verbose):
    """Certified PAC-Bayes generalisation bounds for trained neural networks."""
    global _third_party_warnings
    _third_party_warnings = verbose


@main.group()
def bound():
    """Bound arithmetic on numbers you already have."""


@bound.command("marginal")
@click.option(
    "--log-evidence",
    "log_evidence",
    type=FINITE,
    required=True,
    help="ln P(S) <= 0, the log marginal likelihood of the training labels.",
)
@click.option("--m", "m", type=int, required=True, help="Number of training points (>= 2).")
@click.option("--delta", type=FINITE, default=0.05, show_default=True, help="Failure probability in (0, 1).")
@click.option(
    "--variant",
    type=click.Choice(MARGINAL_VARIANTS),
    default="langford",
    show_default=True,
    help="langford: Valle-Pérez et al. Cor. 1; mcallester: the authors' code.",
)
@json_option
def bound_marginal(log_evidence, m, delta, variant, as_json):
    """Marginal-likelihood PAC-Bayes bound (Valle-Pérez et al. 2019) from ln P(S)."""
    from pacbayes.bounds import marginal_likelihood_bound

    value = marginal_likelihood_bound(log_evidence, m, delta, variant)
    payload = {"bound": value, "log_evidence": log_evidence, "m": m, "delta": delta, "variant": variant}
    emit(
        payload,
        as_json,
        f"generalisation error of Q* <= {value:.6f}  "
        f"(ln P(S) = {log_evidence:.4f}, m = {m}, delta = {delta:g}, variant {variant})",
    )


@bound.command("kl-inverse")
@click.option("--q", type=FINITE, required=True, help="Empirical value in [0, 1].")
@click.option("--c", type=FINITE, required=True, help="Right-hand side c >= 0 of kl(q||p) <= c.")
@click.option("--side", type=click.Choice(["upper", "lower"]), default="upper", show_default=True)
@json_option
def bound_kl_inverse(q, c, side, as_json):
    """Exact inverse of the binary KL: max (or min) p with kl(q||p) <= c."""
    from pacbayes.bounds import kl_inverse_lower, kl_inverse_upper

    if math.isnan(c):
        raise PacBayesError("c must be a number >= 0, got nan")
    value = (kl_inverse_upper if side == "upper" else kl_inverse_lower)(q, c)
    emit({"value": value, "q": q, "c": c, "side": side}, as_json, f"kl^-1_{side}(q={q:g}, c={c:g}) = {value:.12f}")


def _parse_data_spec(spec: str) -> tuple:
    """``NAME_OR_PATH[:train|:test]`` -> (name or path, split or None)."""
    name, _, split = spec.rpartition(":")
    return (name, split) if split in ("train", "test") and name else (spec, None)


def load_data_spec(spec: str):
    """``NAME_OR_PATH[:train|:test]`` -> a pacbayes.data.Dataset (e.g. ``mnist-embedded:train``)."""
    from pacbayes.data import load_dataset

    name, split = _parse_data_spec(spec)
    return load_dataset(name, split=split)


def _data_path(spec):
    """The file or folder a data spec reads (None for none given)."""
    return None if spec is None else _parse_data_spec(spec)[0]


quiet_option = click.option("--quiet", is_flag=True, help="Silence progress bars.")


def _family_option_fields() -> dict:
    """flag -> (the settings field, the names of the families that declare it), over the registry."""
    flags = {}
    for name, settings_type in settings_types().items():
        for f in cli_fields(settings_type):
            flags.setdefault(f.metadata["cli"].flag, (f, []))[1].append(name)
    return flags


def _click_settings(f) -> dict:
    """click.option keyword arguments for settings field ``f`` (its type, default and choices)."""
    declared = f.metadata["cli"]
    kind = value_kind(f)
    if kind is bool:
        return {"is_flag": True, "default": f.default}
    if declared.choices:
        return {"type": click.Choice(declared.choices), "default": f.default, "show_default": True}
    if kind is tuple:
        return {"type": str, "default": None}
    shown = f.default is not None
    return {
        "type": FINITE if kind is float else int if kind is int else str,
        "default": f.default,
        "show_default": shown,
    }


def family_options(command):
    """Add every registered family's user options to ``command``, once per flag (see pacbayes.options)."""
    for flag, (f, names) in reversed(list(_family_option_fields().items())):
        declared = f.metadata["cli"]
        command = click.option(
            flag, *declared.aliases, declared.key, help=f"{', '.join(names)}: {declared.help}", **_click_settings(f)
        )(command)
    return command


def _family_settings(values: dict) -> dict:
    """CertifyOptions keyword arguments from the family flags (comma-separated lists parsed first, every
    number checked against its declared limits)."""
    given = dict(values)
    for flag, (f, _) in _family_option_fields().items():
        key = f.metadata["cli"].key
        if value_kind(f) is tuple:
            if values[key] is None:  # not given: the field's default (e.g. the subspace level grid)
                del given[key]
            else:
                given[key] = _parse_float_list(values[key], flag)
        if key in given:
            check_limits(f, given[key], flag)
    return settings_from_keys(given)


@main.command("certify")
@click.argument("model_path", metavar="MODEL")
@click.option(
    "--train",
    "train_spec",
    default="mnist-embedded:train",
    show_default=True,
    help="Training data the model was trained on: mnist-embedded[:train|:test], an idx/CIFAR "
    "directory, .npz (x, y) or .pt; append :train or :test to pick a split.",
)
@click.option(
    "--test",
    "test_spec",
    default="mnist-embedded:test",
    show_default=True,
    help="Held-out data for the measured test error (must not overlap the training data).",
)
@click.option(
    "--bounds",
    "bound_names",
    default="marginal",
    show_default=True,
    help="Comma-separated bound families: marginal, dziugaite-roy, subspace.",
)
@click.option("--m", type=int, default=None, help="Use a seeded subset of m training points.")
@click.option(
    "--delta",
    type=FINITE,
    default=0.05,
    show_default=True,
    help="Total failure probability, split over every certified number by one union bound.",
)
@click.option(
    "--corrupt",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="Fraction of training labels replaced by random ones (seeded).",
)
@click.option(
    "--negative-classes",
    default=None,
    help="Comma-separated original labels mapped to class 0 for binary models (default 0-4).",
)
@click.option("--architecture", default=None, help="module:Class for a state_dict file.")
@click.option("--kwargs", "kwargs_json", default=None, help="JSON keyword arguments for --architecture.")
@click.option(
    "--trust-pickle", is_flag=True, help="Allow a fully pickled model file (unpickling runs code from the file)."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for every random step.")
@click.option(
    "--allow-duplicates",
    is_flag=True,
    help="Accept training inputs that repeat exactly as independent draws (the data distribution has atoms); "
    "every bound then states this assumption and the report counts the distinct points. Refused by default.",
)
@click.option("--device", type=DEVICE, default=None, help="torch device for kernels and evidence (cpu, cuda).")
@click.option("--out", "out_path", default=None, help="Also write the JSON report to this file (atomically).")
@click.option("--plot", "plot_path", default=None, help="Also draw the report as a PNG here (needs pacbayes[plot]).")
@click.option("--html", "html_path", default=None, help="Also write the report as one self-contained HTML page here.")
@click.option(
    "--max-bound",
    type=FINITE,
    default=None,
    help="Exit with status 1 unless every requested family's certified bound is at most this "
    "value (a CI gate); the failing families are named.",
)
@family_options
@quiet_option
@json_option
def certify_command(
    model_path,
    train_spec,
    test_spec,
    bound_names,
    m,
    delta,
    corrupt,
    negative_classes,
    architecture,
    kwargs_json,
    trust_pickle,
    seed,
    allow_duplicates,
    device,
    out_path,
    plot_path,
    html_path,
    max_bound,
    quiet,
    as_json,
    **family_values,
):
    """Certified bounds on the true error of a trained MODEL, next to its measured errors.

    MODEL may also be a compressed model saved by pacbayes.subspace (give its --architecture).
    Each bound family's own flags are listed with the family names they apply to.
    """
    from pacbayes.attempts import check_ledger
    from pacbayes.certification import CertifyOptions, certify

    check_output_path(out_path, "--out")
    views = _check_views({"--plot": plot_path, "--html": html_path})
    _check_certify_outputs(out_path, model_path, train_spec, test_spec, family_values, views)
    check_ledger(family_values.get("attempts_ledger"))  # before loading anything; certify checks it again
    kwargs = _parse_json_object(kwargs_json, "--kwargs")
    bounds = names([name.strip() for name in bound_names.split(",") if name.strip()], "--bounds")
    settings = _family_settings(family_values)
    model, compressed = _load_model_or_subspace(model_path, architecture, kwargs, trust_pickle)
    settings["subspace"] = replace(settings["subspace"], compressed=compressed)  # a subspace file as MODEL
    options = CertifyOptions(
        bounds=bounds,
        delta=delta,
        m=m,
        seed=seed,
        corrupt=corrupt,
        device=device,
        allow_duplicates=allow_duplicates,
        negative_classes=_parse_int_list(negative_classes, "--negative-classes"),
        quiet=quiet,
        **settings,
    )
    report = certify(model, load_data_spec(train_spec), load_data_spec(test_spec), options)
    payload = _print_report(report, model_path, out_path, as_json)
    _write_views(payload, plot_path, html_path)
    failures = [] if max_bound is None else report.gate_failures(max_bound)
    if failures:
        click.echo(
            "pacbayes: --max-bound "
            + f"{max_bound} fails for "
            + ", ".join(
                f"{family} (certified {'nothing' if value is None else f'{value:.4f}'})" for family, value in failures
            ),
            err=True,
        )
        sys.exit(1)


def _check_certify_outputs(out_path, model_path, train_spec, test_spec, family_values: dict, views: dict) -> None:
    """Refuse an --out, a --plot or --html file (``views``: flag -> path) or an attempts ledger (appended
    to) that is the model, the data, a file another flag names, or each other: writing there would
    destroy that input."""
    from pacbayes.attempts import LEDGER_FLAG

    inputs = {
        "the MODEL file": model_path,
        "the --train data": _data_path(train_spec),
        "the --test data": _data_path(test_spec),
    }
    for flag, (f, _) in _family_option_fields().items():
        if f.metadata["cli"].path and flag != LEDGER_FLAG:
            inputs[f"the {flag} file"] = family_values.get(f.metadata["cli"].key)
    ledger = family_values.get("attempts_ledger")
    check_not_an_input(ledger, LEDGER_FLAG, inputs)
    check_not_an_input(out_path, "--out", {**inputs, f"the {LEDGER_FLAG} file": ledger})
    written = {f"the {LEDGER_FLAG} file": ledger, "the --out file": out_path}
    for flag, path in views.items():
        check_not_an_input(path, flag, {**inputs, **written})
        written[f"the {flag} file"] = path


def _check_views(views: dict) -> dict:
    """Check the --plot and --html paths (flag -> path) before any work: writable, and matplotlib
    installed for a --plot. Returns ``views``."""
    from pacbayes.figures import require_matplotlib

    for flag, path in views.items():
        check_output_path(path, flag)
    if views.get("--plot"):
        require_matplotlib()
    return views


def _write_views(payload: dict, plot_path, html_path) -> None:
    """Write the --plot PNG and the --html page of a certify report, from the same values as its JSON."""
    from pacbayes.figures import png_bytes, report_figure, write_png
    from pacbayes.html_report import write_html
    from pacbayes.report import json_safe

    record = json_safe(payload)
    png = png_bytes(report_figure(record)) if plot_path else None  # drawn once for both
    if plot_path:
        write_png(png, plot_path)
    if html_path:
        write_html(record, html_path, png)


def _load_model_or_subspace(path, architecture, kwargs, trust_pickle):
    """(model, compressed): a subspace file decodes to its compressed model, else load_model."""
    from pacbayes.models import instantiate_architecture, load_model
    from pacbayes.subspace import is_subspace_file, load_subspace_model

    if is_subspace_file(path):
        if architecture is None:
            raise PacBayesError(
                f"{path} is a compressed subspace model: give its architecture with "
                "--architecture module:Class [--kwargs JSON]"
            )
        compressed = load_subspace_model(path, instantiate_architecture(architecture, kwargs))
        return compressed.decode().eval(), compressed
    return load_model(path, architecture=architecture, kwargs=kwargs, trust_pickle=trust_pickle), None


def _print_report(report, model_path: str, out_path, as_json: bool) -> dict:
    from pacbayes.provenance import model_file_record
    from pacbayes.report import render_text, write_json_atomically

    report.provenance.update(model_file_record(model_path))  # the file's SHA-256 and kind
    payload = dict(report.to_dict(), model_path=model_path)
    if out_path:
        try:
            write_json_atomically(payload, out_path)
        except OSError as err:  # checked before computing; the place changed since
            raise PacBayesError(
                f"--out {out_path}: cannot write the report ({err.strerror or err}); choose a writable path"
            ) from None
    emit(payload, as_json, render_text(report, title=f"pacbayes certificate for {model_path}"))
    return payload


def _parse_json_object(text, flag: str):
    if text is None:
        return None
    try:
        value = parsed(json.loads, text, flag)
    except json.JSONDecodeError as err:
        raise PacBayesError(f"{flag} must be a JSON object, e.g. '{{\"width\": 512}}': {err.msg}") from err
    if not isinstance(value, dict):
        raise PacBayesError(f"{flag} must be a JSON object, e.g. '{{\"width\": 512}}'")
    return value


def _parse_float_list(text, flag: str) -> tuple:
    if text is None:
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise PacBayesError(f"{flag} must be comma-separated numbers, e.g. 1e-6,1e-4,1e-2") from err
    if not all(math.isfinite(v) and v >= 0 for v in values) or list(values) != sorted(values):
        raise PacBayesError(f"{flag} must be ascending finite numbers >= 0, e.g. 1e-6,1e-4,1e-2")
    return values


def _parse_int_list(text, flag: str):
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise PacBayesError(f"{flag} must be comma-separated integers, e.g. 0,1,2,3,4") from err


@main.command()
@click.option(
    "--m", type=click.IntRange(min=2), default=1000, show_default=True, help="Training points from mnist-embedded."
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--delta", type=FINITE, default=0.05, show_default=True)
@click.option("--workdir", default="pacbayes-demo", show_default=True, help="Where the trained model is saved.")
@click.option("--out", "out_path", default=None, help="Also write the JSON report to this file (atomically).")
@quiet_option
@json_option
def demo(m, seed, delta, workdir, out_path, quiet, as_json):
    """Train a small ReLU net on the embedded MNIST data and certify it end to end."""
    from pacbayes.demo import demo_files, run_demo

    check_output_path(out_path, "--out")
    check_output_dir(workdir, "--workdir")
    check_not_an_input(out_path, "--out", demo_files(workdir))
    report, model_path, epochs = run_demo(m=m, seed=seed, delta=delta, workdir=workdir, quiet=quiet)
    if not as_json:
        click.echo(
            f"trained a depth-2 width-512 ReLU net on {m} binarised mnist-embedded images to zero "
            f"training error in {epochs} epochs; saved to {model_path}\n"
        )
    _print_report(report, model_path, out_path, as_json)


@main.group("data")
def data_group():
    """Inspect data sets before certifying on them."""


@data_group.command("info")
@click.argument("data_spec", metavar="DATA")
@json_option
def data_info(data_spec, as_json):
    """What pacbayes reads from DATA (same syntax as certify --train): size, shape, classes, range."""
    dataset = load_data_spec(data_spec)
    counts = [int(c) for c in dataset.labels.bincount(minlength=dataset.num_classes)]
    classes = [list(c) if isinstance(c, tuple) else c for c in dataset.classes]
    payload = {
        "name": dataset.name,
        "n": len(dataset),
        "shape": list(dataset.x.shape[1:]),
        "classes": classes,
        "class_counts": counts,
        "x_min": float(dataset.x.min()),
        "x_max": float(dataset.x.max()),
        "info": dataset.info,
    }
    lines = [
        f"{dataset.name}: {len(dataset)} examples of shape {tuple(dataset.x.shape[1:])}, "
        f"values in [{payload['x_min']:g}, {payload['x_max']:g}]",
        "classes (original label: count): " + ", ".join(f"{c}: {n}" for c, n in zip(classes, counts)),
    ]
    lines += [f"{key}: {value}" for key, value in dataset.info.items()]
    emit(payload, as_json, "\n".join(lines))


@data_group.command("export")
@click.argument("data_spec", metavar="DATA")
@click.option("-o", "--output", "x_path", required=True, help="Write the inputs here (.npy, float64).")
@click.option("--labels", "labels_path", required=True, help="Write the labels here (.npy).")
@click.option("--m", type=int, default=None, help="Export a seeded subset of m examples (as certify --m does).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the --m subset.")
@click.option(
    "--binarise",
    is_flag=True,
    help="Binarise as certify does for one logit (label values 0-4 -> -1, others +1; two-valued labels "
    "as given); labels are then float64 signs.",
)
@click.option("--flatten", is_flag=True, help="Write inputs as (n, d) instead of (n, c, h, w).")
@json_option
def data_export(data_spec, x_path, labels_path, m, seed, binarise, flatten, as_json):
    """Write DATA (same syntax as certify --train) as .npy arrays for `kernel` and `evidence`.

    Inputs are float64, (n, c, h, w) or with --flatten (n, d); labels are int64 class indices, or
    with --binarise -1/+1 float64 signs (what `pacbayes evidence --labels` takes). With --m the
    subset is drawn after binarising, as certify draws it. Each file is written to exactly the
    path given (nothing is appended)."""
    import os

    import numpy as np
    import torch

    from pacbayes import data
    from pacbayes.report import write_atomically

    check_output_path(x_path, "-o/--output")
    check_output_path(labels_path, "--labels")
    for path, flag in ((x_path, "-o/--output"), (labels_path, "--labels")):
        check_not_an_input(path, flag, {"the DATA file": _data_path(data_spec)})
    if os.path.abspath(x_path) == os.path.abspath(labels_path):
        raise PacBayesError(f"-o/--output and --labels are both {x_path}; give two different paths")
    dataset = load_data_spec(data_spec)
    if binarise:
        dataset = data.binarise(dataset)
    if m is not None:
        dataset = data.take(dataset, m, seed=seed)
    x = dataset.x.to(dtype=torch.float64).numpy()
    if flatten:
        x = x.reshape(len(dataset), -1)
    labels = (data.signs(dataset.labels) if binarise else dataset.labels).numpy()
    for path, array in ((x_path, x), (labels_path, labels)):
        try:  # to exactly this path (numpy.save(path) would append .npy), atomically
            write_atomically(path, lambda stream, array=array: np.save(stream, array), binary=True)
        except OSError as err:
            raise PacBayesError(f"cannot write {path!r} ({err}); choose a writable path") from err
    payload = {"x": x_path, "labels": labels_path, "n": len(dataset), "shape": list(x.shape)}
    kind = "-1/+1 signs" if binarise else "class indices"
    emit(
        payload,
        as_json,
        f"{dataset.name}: {len(dataset)} inputs of shape {tuple(x.shape[1:])} -> {x_path}, {kind} -> {labels_path}",
    )


@main.command("evidence")
@click.option(
    "--kernel-file",
    "--kernel",
    "kernel_path",
    required=True,
    help="m x m kernel matrix K (.npy, float64); --kernel is the older name.",
)
@click.option(
    "--labels",
    "labels_path",
    required=True,
    help="m labels (.npy): {-1,+1} or {0,1} for one logit; class indices 0..C-1 with --classes C.",
)
@click.option(
    "--classes",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="C: the labels are argmax classes of C independent GPs with kernel K (2: the binary orthant).",
)
@click.option(
    "--method",
    type=click.Choice(["ep", "certified", "all"]),
    default="all",
    show_default=True,
    help="ep: EP estimate; certified: importance-sampling lower bound and psi* upper bound; all: both.",
)
@click.option(
    "--proposal",
    type=click.Choice(PROPOSALS),
    default=DEFAULT_PROPOSAL,
    show_default=True,
    help="Importance sampler of the certified lower bound: the EP cavity conditionals, or Botev's minimax tilting.",
)
@click.option(
    "--delta-prime",
    "delta_prime",
    type=FINITE,
    default=0.01,
    show_default=True,
    help="Failure probability of the certified lower bound.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the importance sampler.")
@click.option(
    "--importance-samples",
    "--samples",
    "samples",
    type=click.IntRange(min=1),
    default=DEFAULT_SAMPLES,
    show_default=True,
    help="Importance samples of the certified lower bound (--samples is the older name).",
)
@click.option(
    "--jitter", type=FINITE, default=0.0, show_default=True, help="Fixed epsilon: the prior is N(0, K + epsilon I)."
)
@click.option("--tol", type=FINITE, default=EP_TOL, show_default=True, help="EP: relative change of ln Z.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@json_option
def evidence_command(
    kernel_path, labels_path, classes, method, proposal, delta_prime, seed, samples, jitter, tol, device, quiet, as_json
):
    """ln P(S) of the labels under the GP prior N(0, K + jitter I) (one per logit for C classes):
    EP estimate and certified sandwich."""
    from pacbayes.data.arrays import load_npy
    from pacbayes.device import resolve_device, threads_for
    from pacbayes.evidence.budget import evidence_budgets, orthant_dimension
    from pacbayes.evidence.label_model import label_model
    from pacbayes.progress import announce

    if method != "ep" and not 0.0 < delta_prime < 1.0:
        raise PacBayesError(f"--delta-prime must be in (0, 1), got {delta_prime}")
    K, y = load_npy(kernel_path, "kernel", kinds="iuf", square=True), load_npy(labels_path, "labels")
    likelihood = label_model(classes)
    likelihood.check_labels(y, int(K.shape[0]) if K.ndim else 0)
    prior = likelihood.prior.format(jitter=jitter)
    payload = {
        "method": method,
        "m": int(K.shape[0]) if K.ndim else 0,
        "classes": classes,
        "jitter": jitter,
        "prior": prior,
        "log_evidence_ep": None,
        "log_evidence_lower": None,
        "log_evidence_upper": None,
        "log_evidence_upper_note": None,
        "delta_prime": None,
        "proposal": None,
        "sweeps": None,
        "seconds": 0.0,
    }
    lines = []
    runs_ep, runs_certified = method in ("ep", "all"), method in ("certified", "all")
    target = str(resolve_device(device))
    ep = None
    budgets = evidence_budgets(payload["m"], classes, samples, target, proposal=proposal, with_ep=runs_ep)
    for budget, wanted in zip(budgets, (runs_ep, runs_certified)):
        if wanted:
            announce(budget.line(), quiet=quiet)
            budget.check_fits(target, "pass a smaller kernel or use a device with more memory (--device)")
    with threads_for(orthant_dimension(payload["m"], classes), device):
        if runs_ep:
            ep = likelihood.ep(K, y, jitter=jitter, tol=tol, device=device, quiet=quiet)
            payload.update(
                log_evidence_ep=ep.log_evidence,
                sweeps=ep.sweeps,
                ep_converged=ep.converged,
                ep_final_change=ep.final_change,
                seconds_ep=ep.seconds,
            )
            payload["seconds"] += ep.seconds
            lines.append(
                f"  estimate (EP, not a bound):  {ep.log_evidence:.6f}   "
                f"[{ep.sweeps} sweeps, relative change {ep.final_change:.1e}, {ep.seconds:.2f} s]"
            )
        if runs_certified:
            cert = likelihood.certified(
                K,
                y,
                delta_prime=delta_prime,
                seed=seed,
                samples=samples,
                jitter=jitter,
                device=device,
                quiet=quiet,
                proposal=proposal,
                ep=ep,
            )
            payload.update(
                log_evidence_lower=cert.lower,
                log_evidence_upper=cert.upper,
                log_evidence_upper_note=cert.upper_reason,
                delta_prime=cert.delta_prime,
                log_estimate=cert.log_estimate,
                grad_norm=cert.grad_norm,
                samples=cert.samples,
                proposal=cert.proposal,
                seed=cert.seed,
                relative_std=cert.relative_std,
                effective_samples=cert.effective_samples,
                seconds_certified=cert.seconds,
            )
            payload["seconds"] += cert.seconds
            lines += [
                (
                    f"  certified lower:             {cert.lower:.6f}   [probability >= "
                    f"{1 - cert.delta_prime:g}; ln Z_hat {cert.log_estimate:.6f} from {cert.samples} "
                    f"{cert.proposal} samples, seed {cert.seed}]"
                ),
                (
                    f"  upper (psi*, deterministic): {cert.upper:.6f}   [|grad_x psi| {cert.grad_norm:.1e}]"
                    if cert.upper is not None
                    else f"  upper (psi*, deterministic): not certified: {cert.upper_reason}"
                ),
            ]
    emit(payload, as_json, f"ln P(S) under the prior {prior}, m = {payload['m']}:\n" + "\n".join(lines))


def _parse_sigma_b(text: str):
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


@main.command("kernel")
@click.argument("inputs_path", metavar="INPUTS")
@click.option(
    "--kernel-arch",
    "--arch",
    "arch",
    type=click.Choice(["fc", "cnn"]),
    default="fc",
    show_default=True,
    help="Analytic NNGP of a fully connected or convolutional net (--arch is the older name).",
)
@click.option(
    "--depth",
    type=int,
    default=2,
    show_default=True,
    help="Hidden layers (fc) or conv layers (cnn), each followed by the activation.",
)
@click.option("--activation", type=click.Choice(ANALYTIC_ACTIVATIONS), default="relu", show_default=True)
@click.option(
    "--sigma-w",
    type=FINITE,
    default=1.0,
    show_default=True,
    help="Weight std times sqrt(fan_in): weights ~ N(0, sigma_w^2 / fan_in).",
)
@click.option(
    "--sigma-b",
    default="0.0",
    show_default=True,
    help="Bias std, or comma-separated depth + 1 values (one per linear layer, first first).",
)
@click.option(
    "--pooling",
    type=click.Choice(["flatten", "gap"]),
    default="flatten",
    show_default=True,
    help="cnn read-out: dense layer on flattened features, or global average pooling.",
)
@click.option("--kernel-size", type=int, default=3, show_default=True, help="cnn: filter size.")
@click.option("--stride", type=int, default=1, show_default=True, help="cnn: stride.")
@click.option("--padding", type=int, default=None, help="cnn: zero padding [default: (kernel_size - 1) // 2].")
@click.option(
    "--model",
    "model_path",
    default=None,
    help="Monte Carlo NNGP of this model file instead (re-initialised --kernel-samples times).",
)
@click.option(
    "--kernel-samples",
    "--samples",
    "samples",
    type=click.IntRange(min=1),
    default=None,
    help="Monte Carlo initialisations (--samples is the older name) [default: chosen for an entry standard "
    "error of 1% of the mean diagonal and rank >= n].",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Monte Carlo seed.")
@click.option("--architecture", default=None, help="module:Class for a state_dict --model file.")
@click.option("--trust-pickle", is_flag=True, help="Allow a fully pickled --model file (runs its code).")
@click.option("-o", "--output", "output_path", required=True, help="Write the n x n float64 kernel here (.npy).")
@click.option("--block-size", type=int, default=None, help="Tile size (inputs per block).")
@click.option("--device", type=DEVICE, default=None, help="torch device (cpu, cuda).")
@quiet_option
@json_option
def kernel_command(
    inputs_path,
    arch,
    depth,
    activation,
    sigma_w,
    sigma_b,
    pooling,
    kernel_size,
    stride,
    padding,
    model_path,
    samples,
    seed,
    architecture,
    trust_pickle,
    output_path,
    block_size,
    device,
    quiet,
    as_json,
):
    """NNGP kernel matrix K(INPUTS, INPUTS) of an (n, d) or (n, c, h, w) array (.npy / .npz)."""
    import time

    import numpy as np

    from pacbayes.data.arrays import load_kernel_inputs
    from pacbayes.kernels import ConvolutionalNNGP, FullyConnectedNNGP, MonteCarloNNGP
    from pacbayes.kernels.spectrum import min_eigenvalue
    from pacbayes.report import write_atomically

    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the INPUTS file": inputs_path, "the --model file": model_path})
    x = load_kernel_inputs(inputs_path)
    if model_path is not None:
        from pacbayes.models import load_model

        model = load_model(model_path, architecture=architecture, trust_pickle=trust_pickle)
        kernel = MonteCarloNNGP(model, samples=samples, seed=seed)
    elif arch == "fc":
        kernel = FullyConnectedNNGP(depth, activation, sigma_w, _parse_sigma_b(sigma_b))
    else:
        x = x[:, None] if x.ndim == 3 else x  # (n, h, w): one channel
        pad = (kernel_size - 1) // 2 if padding is None else padding
        kernel = ConvolutionalNNGP(
            [(None, kernel_size, stride, pad)] * depth, activation, sigma_w, _parse_sigma_b(sigma_b), pooling
        )
    started = time.perf_counter()
    K = kernel.matrix(x, device=device, block_size=block_size, quiet=quiet)
    seconds = time.perf_counter() - started
    smallest, method = (
        (kernel.diagnostics["min_eigenvalue"], "eigvalsh")
        if "min_eigenvalue" in kernel.diagnostics
        else min_eigenvalue(K)
    )
    matrix = K.cpu().numpy()
    try:  # to exactly this path (numpy.save(path) would append .npy), atomically
        write_atomically(output_path, lambda stream: np.save(stream, matrix), binary=True)
    except OSError as err:
        raise PacBayesError(f"cannot write {output_path!r} ({err}); choose a writable path") from err
    payload = {
        "shape": list(K.shape),
        "seconds": seconds,
        "min_eigenvalue": smallest,
        "min_eigenvalue_method": method,
        "output": output_path,
        "kernel": kernel.describe(),
    }
    if kernel.diagnostics:
        payload["diagnostics"] = kernel.diagnostics
    emit(
        payload,
        as_json,
        f"{kernel.describe()['kind']} kernel {K.shape[0]} x {K.shape[1]} -> {output_path} "
        f"in {seconds:.2f} s; smallest eigenvalue {smallest:.3e} ({method})",
    )


@main.command("check")
@click.argument("claims_path", metavar="CLAIMS.toml")
@click.option(
    "--cache-dir",
    default=None,
    help="Cache certify reports here by content hash (entries that are corrupt or fail verify are recomputed).",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow fully pickled model files (unpickling runs code from the file). A claims file "
    "can never allow this itself.",
)
@click.option(
    "--trust-code",
    is_flag=True,
    help="Allow the claims file's architecture keys (importing 'file.py:Class' or 'module:Class' runs its code).",
)
@quiet_option
@json_option
def check_command(claims_path, cache_dir, trust_pickle, trust_code, quiet, as_json):
    """Check every generalisation claim in CLAIMS.toml; exit 1 if any claim fails, 2 if any could not
    be checked (an ERROR row; the other claims still run)."""
    from pacbayes.claims import check_claims, render_table

    if os.path.exists(claims_path):
        regular_file(claims_path, "claims file")  # a FIFO or a device would block the read
    if cache_dir:
        check_output_dir(cache_dir, "--cache-dir")
    results = check_claims(
        claims_path,
        load_data_spec,
        cache_dir=cache_dir or False,
        quiet=quiet,
        trust_pickle=trust_pickle,
        trust_code=trust_code,
    )
    errors = [r for r in results if r.error is not None]
    failed = sum(not r.passed for r in results) - len(errors)
    payload = {
        "claims": [r.to_dict() for r in results],
        "passed": len(results) - failed - len(errors),
        "failed": failed,
        "errors": len(errors),
        "all_passed": failed == 0 and not errors,
    }
    emit(payload, as_json, render_table(results))
    if errors:
        _fail(
            f"{len(errors)} of {len(results)} claims could not be checked (first: {errors[0].name}: {errors[0].error})",
            2,
        )
    if failed:
        sys.exit(1)


@main.command("verify")
@click.argument("report_path", metavar="REPORT.json")
@click.argument("model_path", metavar="[MODEL]", required=False)
@click.option("--train", "train_spec", default=None, help="Training data to hash (default: the recorded --train).")
@click.option("--test", "test_spec", default=None, help="Test data to hash (default: the recorded --test).")
@click.option(
    "--rerun", is_flag=True, help="Also certify MODEL again at the report's delta with the recorded options and seed."
)
@click.option(
    "--architecture",
    default=None,
    help="module:Class for a state_dict MODEL (default: the recorded one, with --trust-code).",
)
@click.option("--kwargs", "kwargs_json", default=None, help="JSON keyword arguments for --architecture.")
@click.option(
    "--trust-code",
    is_flag=True,
    help="With --rerun, allow the --architecture recorded in the report (importing it runs its code).",
)
@click.option("--quiet", is_flag=True, help="Print nothing; the exit status says it all.")
@json_option
def verify_command(
    report_path, model_path, train_spec, test_spec, rerun, architecture, kwargs_json, trust_code, quiet, as_json
):
    """Check that REPORT.json (from certify --json or --out) still matches its model file and data.

    Recomputes every bound in the report from the inputs it stores, each row's certified flag, the
    ledger, the hold-out and best certified bounds; the model file's SHA-256 and kind (MODEL,
    default the recorded path), the data content hashes and counts (for a certify report, the
    recorded --train/--test unless given); with --rerun certifies again at the report's delta with
    the recorded options and seed. Exit status 0: everything checked matches; 1: a mismatch (the
    first is named); 2: bad input.
    """
    from pacbayes.models import require_trusted_code
    from pacbayes.verification import check_report, failed

    record = _read_report(report_path)
    recorded = _recorded_certify_params(record)
    model_path = model_path or record.get("model_path")
    if model_path is not None and not isinstance(model_path, str):
        raise PacBayesError(
            f"{report_path}: its model_path must be a file path (a string), got {model_path!r:.60}; give MODEL"
        )
    if isinstance(model_path, str) and os.path.exists(model_path):
        regular_file(model_path, "MODEL")  # hashing a FIFO or /dev/zero would never end
    if rerun and model_path is None:
        raise PacBayesError("--rerun needs the model: give MODEL (the report records no model_path)")
    train_spec = train_spec or recorded.get("train_spec")
    test_spec = test_spec or recorded.get("test_spec")
    if rerun and (train_spec is None or test_spec is None):
        raise PacBayesError("--rerun needs the data: give --train and --test (the report's command line has none)")
    model = None
    if rerun:
        if architecture is None:  # one typed on this command line is the user's own choice
            architecture = recorded.get("architecture")
            require_trusted_code(architecture, f"the command line recorded in {report_path}", trust_code)
        kwargs = _parse_json_object(kwargs_json or recorded.get("kwargs_json"), "--kwargs")
        model = _load_model_or_subspace(model_path, architecture, kwargs, trust_pickle=False)[0]
    checks = check_report(
        record,
        model_file=model_path,
        train=None if train_spec is None else load_data_spec(train_spec),
        test=None if test_spec is None else load_data_spec(test_spec),
        model=model,
    )
    mismatches = failed(checks)
    payload = {
        "matches": not mismatches,
        "first_mismatch": mismatches[0].name if mismatches else None,
        "checks": [c.to_dict() for c in checks],
    }
    lines = [f"  {c.status:<9} {c.name}" + (f"  ({c.note})" if c.note else "") for c in checks]
    verdict = f"MISMATCH: {mismatches[0].name}" if mismatches else "the report matches"
    if not quiet:
        emit(payload, as_json, "\n".join([f"pacbayes verify {report_path}", *lines, verdict]))
    if mismatches:
        sys.exit(1)


MAX_REPORT_BYTES = 1 << 26
"""The largest report file read (64 MiB; a certify report is a few kilobytes)."""


def _read_json(path: str, what: str = "report", hint: str = "give the file written by certify --out"):
    """The JSON value in the file ``path`` (a ``what``); one-line errors end with ``hint``."""
    if not os.path.exists(path):
        raise PacBayesError(f"{path}: no such {what} file; {hint}")
    regular_file(path, what)  # a directory is refused here, by name
    with open_regular(path, what, MAX_REPORT_BYTES) as stream:  # a FIFO or /dev/zero would never end
        raw = stream.read()
    try:
        return parsed(json.loads, raw.decode("utf-8"), f"{what} {path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PacBayesError(f"{path}: not a JSON {what} ({err}); {hint}") from None


def _read_report(path: str) -> dict:
    record = _read_json(path)
    if not isinstance(record, dict):
        raise PacBayesError(f"{path}: a report is one JSON object; give the file written by certify --out")
    return record


def _recorded_certify_params(record: dict) -> dict:
    """The certify options of the report's recorded command line, parsed as certify would (else {})."""
    argv = (record.get("provenance") or {}).get("command_line") or []
    if not isinstance(argv, list) or "certify" not in argv:
        return {}
    args = [str(word) for word in argv[argv.index("certify") + 1 :]]
    try:
        return certify_command.make_context("certify", args, resilient_parsing=True).params
    except click.ClickException:
        return {}


def _check_verifies(record: dict, where: str) -> None:
    """PacBayesError unless every certified number of the report recomputes from its stored inputs
    (:func:`pacbayes.verification.check_report`): a picture or a page never shows an edited report as certified."""
    from pacbayes.verification import check_report, failed

    mismatches = failed(check_report(record))
    if mismatches:
        raise PacBayesError(
            f"{where} does not verify (check {mismatches[0].name} fails), so it is not drawn; "
            f"run pacbayes verify {where} for every check, or certify the model again"
        )


@main.command("plot")
@click.argument("input_path", metavar="REPORT.json|HISTORY.json")
@click.option("-o", "--output", "output_path", required=True, help="Write the PNG here.")
@json_option
def plot_command(input_path, output_path, as_json):
    """Draw a certify report (every bound beside the measured errors and the hold-out bound) or a
    BoundMonitor history (errors and bounds per checkpoint) as a PNG; needs pacbayes[plot]."""
    from pacbayes.figures import REPORT, figure_for, kind_of, require_matplotlib, save_png

    require_matplotlib()
    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the input file": input_path})
    hint = "give the JSON written by certify --out or by BoundMonitor.history_to_json"
    payload = _read_json(input_path, "input", hint)
    if kind_of(payload, input_path) == REPORT:
        _check_verifies(payload, input_path)
    kind, figure = figure_for(payload, input_path)
    save_png(figure, output_path)
    emit({"figure": output_path, "kind": kind}, as_json, f"wrote the {kind} figure to {output_path}")


@main.command("report")
@click.argument("report_path", metavar="REPORT.json")
@click.option("-o", "--output", "output_path", required=True, help="Write the HTML page here.")
@json_option
def report_command(report_path, output_path, as_json):
    """Write a certify report as one self-contained HTML page: the bounds table, the picture, what each
    bound certifies, the delta ledger, the assumptions and the provenance."""
    from pacbayes.figures import REPORT, kind_of
    from pacbayes.html_report import write_html

    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the REPORT file": report_path})
    record = _read_json(report_path)
    if kind_of(record, report_path) != REPORT:
        raise PacBayesError(f"{report_path} is a monitor history, not a certify report; draw it with pacbayes plot")
    _check_verifies(record, report_path)
    write_html(record, output_path)
    emit({"page": output_path}, as_json, f"wrote the HTML report to {output_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
