"""``pacbayes demo``: train a small ReLU net on the embedded MNIST data and certify it end to end."""

import click

from pacbayes.arguments import check_not_an_input, check_output_dir, check_output_path
from pacbayes.cli.params import FINITE, SEED, json_option, quiet_option
from pacbayes.cli.reports import print_report


@click.command()
@click.option(
    "--m", type=click.IntRange(min=2), default=1000, show_default=True, help="Training points from mnist-embedded."
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--delta", type=FINITE, default=0.05, show_default=True)
@click.option("--workdir", default="pacbayes-demo", show_default=True, help="Where the trained model is saved.")
@click.option("--out", "out_path", default=None, help="Also write the JSON report to this file (atomically).")
@quiet_option
@json_option
def demo(m: int, seed: int, delta: float, workdir: str, out_path: str | None, quiet: bool, as_json: bool) -> None:
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
    print_report(report, model_path, out_path, as_json)
