"""``pacbayes data``: inspect a data set, or export it as the arrays ``kernel`` and ``evidence`` read."""

import os

import click

from pacbayes.arguments import check_not_an_input, check_output_path
from pacbayes.cli.app import emit
from pacbayes.cli.params import SEED, data_path, json_option, load_data_spec
from pacbayes.errors import PacBayesError


@click.group("data")
def data_group() -> None:
    """Inspect data sets before certifying on them."""


@data_group.command("info")
@click.argument("data_spec", metavar="DATA")
@json_option
def data_info(data_spec: str, as_json: bool) -> None:
    """What pacbayes reads from DATA (same syntax as certify --train): size, shape, classes, range."""
    from pacbayes.data.export import summary, summary_text

    record = summary(load_data_spec(data_spec))
    emit(record, as_json, summary_text(record))


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
def data_export(
    data_spec: str,
    x_path: str,
    labels_path: str,
    m: int | None,
    seed: int,
    binarise: bool,
    flatten: bool,
    as_json: bool,
) -> None:
    """Write DATA (same syntax as certify --train) as .npy arrays for `kernel` and `evidence`.

    Inputs are float64, (n, c, h, w) or with --flatten (n, d); labels are int64 class indices, or
    with --binarise -1/+1 float64 signs (what `pacbayes evidence --labels` takes). With --m the
    subset is drawn after binarising, as certify draws it. Each file is written to exactly the
    path given (nothing is appended)."""
    from pacbayes.data.export import export_arrays

    check_output_path(x_path, "-o/--output")
    check_output_path(labels_path, "--labels")
    for path, flag in ((x_path, "-o/--output"), (labels_path, "--labels")):
        check_not_an_input(path, flag, {"the DATA file": data_path(data_spec)})
    if os.path.abspath(x_path) == os.path.abspath(labels_path):
        raise PacBayesError(f"-o/--output and --labels are both {x_path}; give two different paths")
    dataset, shape = export_arrays(
        load_data_spec(data_spec), x_path, labels_path, m=m, seed=seed, binarise=binarise, flatten=flatten
    )
    payload = {"x": x_path, "labels": labels_path, "n": len(dataset), "shape": list(shape)}
    kind = "-1/+1 signs" if binarise else "class indices"
    emit(
        payload,
        as_json,
        f"{dataset.name}: {len(dataset)} inputs of shape {tuple(shape[1:])} -> {x_path}, {kind} -> {labels_path}",
    )
