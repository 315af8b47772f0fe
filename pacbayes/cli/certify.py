"""``pacbayes certify``: certified bounds on the true error of a trained model, next to its measured errors."""

import sys
from dataclasses import replace
from typing import Any

import click

from pacbayes.arguments import check_not_an_input, check_output_dir, check_output_path, names
from pacbayes.cli.families import family_option_fields, family_options, family_settings
from pacbayes.cli.params import (
    DEVICE,
    FINITE,
    SEED,
    cache_dir_option,
    data_path,
    json_option,
    load_data_spec,
    max_minutes_option,
    parse_int_list,
    parse_json_object,
    quiet_option,
)
from pacbayes.cli.reports import check_views, print_report, write_views


@click.command("certify")
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
@cache_dir_option
@max_minutes_option
@family_options
@quiet_option
@json_option
def certify_command(
    model_path: str,
    train_spec: str,
    test_spec: str,
    bound_names: str,
    m: int | None,
    delta: float,
    corrupt: float,
    negative_classes: str | None,
    architecture: str | None,
    kwargs_json: str | None,
    trust_pickle: bool,
    seed: int,
    allow_duplicates: bool,
    device: str | None,
    out_path: str | None,
    plot_path: str | None,
    html_path: str | None,
    max_bound: float | None,
    cache_dir: str | None,
    max_minutes: float | None,
    quiet: bool,
    as_json: bool,
    **family_values: Any,
) -> None:
    """Certified bounds on the true error of a trained MODEL, next to its measured errors.

    MODEL may also be a compressed model saved by pacbayes.subspace (give its --architecture).
    Each bound family's own flags are listed with the family names they apply to.
    """
    from pacbayes.attempts import check_ledger
    from pacbayes.certification import CertifyOptions, certify
    from pacbayes.subspace import load_model_or_subspace

    check_output_path(out_path, "--out")
    if cache_dir:
        check_output_dir(cache_dir, "--cache-dir")
    views = check_views({"--plot": plot_path, "--html": html_path})
    _check_certify_outputs(out_path, model_path, train_spec, test_spec, family_values, views)
    check_ledger(family_values.get("attempts_ledger"))  # before loading anything; certify checks it again
    kwargs = parse_json_object(kwargs_json, "--kwargs")
    bounds = names([name.strip() for name in bound_names.split(",") if name.strip()], "--bounds")
    settings = family_settings(family_values)
    model, compressed = load_model_or_subspace(model_path, architecture, kwargs, trust_pickle)
    settings["subspace"] = replace(settings["subspace"], compressed=compressed)  # a subspace file as MODEL
    options = CertifyOptions(
        bounds=bounds,
        delta=delta,
        m=m,
        seed=seed,
        corrupt=corrupt,
        device=device,
        allow_duplicates=allow_duplicates,
        negative_classes=parse_int_list(negative_classes, "--negative-classes"),
        quiet=quiet,
        cache_dir=cache_dir or None,
        max_minutes=max_minutes,
    ).with_settings(settings)
    report = certify(model, load_data_spec(train_spec), load_data_spec(test_spec), options)
    payload = print_report(report, model_path, out_path, as_json)
    write_views(payload, plot_path, html_path)
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


def _check_certify_outputs(
    out_path: str | None,
    model_path: str,
    train_spec: str,
    test_spec: str,
    family_values: dict[str, Any],
    views: dict[str, str | None],
) -> None:
    """Refuse an --out, a --plot or --html file (``views``: flag -> path) or an attempts ledger (appended
    to) that is the model, the data, a file another flag names, or each other: writing there would
    destroy that input."""
    from pacbayes.attempts import LEDGER_FLAG

    inputs = {
        "the MODEL file": model_path,
        "the --train data": data_path(train_spec),
        "the --test data": data_path(test_spec),
    }
    for flag, (f, _) in family_option_fields().items():
        if f.metadata["cli"].path and flag != LEDGER_FLAG:
            inputs[f"the {flag} file"] = family_values.get(f.metadata["cli"].key)
    ledger = family_values.get("attempts_ledger")
    check_not_an_input(ledger, LEDGER_FLAG, inputs)
    check_not_an_input(out_path, "--out", {**inputs, f"the {LEDGER_FLAG} file": ledger})
    written = {f"the {LEDGER_FLAG} file": ledger, "the --out file": out_path}
    for flag, path in views.items():
        check_not_an_input(path, flag, {**inputs, **written})
        written[f"the {flag} file"] = path
