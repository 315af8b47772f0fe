"""``pacbayes kernel``: the NNGP kernel matrix of a set of inputs, analytic or Monte Carlo of a model file."""

import click

from pacbayes.activations import ANALYTIC_ACTIVATIONS
from pacbayes.arguments import check_not_an_input, check_output_path
from pacbayes.cli.app import emit
from pacbayes.cli.params import DEVICE, FINITE, SEED, json_option, parse_sigma_b, quiet_option


@click.command("kernel")
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
@click.option(
    "--kernel-projection",
    "projection",
    type=click.IntRange(min=1),
    default=None,
    help="Monte Carlo: random projections of each initialisation's read-out features (faster for large n).",
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
    inputs_path: str,
    arch: str,
    depth: int,
    activation: str,
    sigma_w: float,
    sigma_b: str,
    pooling: str,
    kernel_size: int,
    stride: int,
    padding: int | None,
    model_path: str | None,
    samples: int | None,
    projection: int | None,
    seed: int,
    architecture: str | None,
    trust_pickle: bool,
    output_path: str,
    block_size: int | None,
    device: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """NNGP kernel matrix K(INPUTS, INPUTS) of an (n, d) or (n, c, h, w) array (.npy / .npz)."""
    from pacbayes.data.arrays import load_kernel_inputs
    from pacbayes.kernels import CompiledNNGP, MonteCarloNNGP
    from pacbayes.kernels.build import analytic_kernel, write_kernel_matrix

    check_output_path(output_path, "-o/--output")
    check_not_an_input(output_path, "-o/--output", {"the INPUTS file": inputs_path, "the --model file": model_path})
    x = load_kernel_inputs(inputs_path)
    if model_path is not None:
        from pacbayes.models import load_model

        model = load_model(model_path, architecture=architecture, trust_pickle=trust_pickle)
        kernel: MonteCarloNNGP | CompiledNNGP = MonteCarloNNGP(model, samples=samples, seed=seed, projection=projection)
    else:
        if arch == "cnn" and x.ndim == 3:
            x = x[:, None]  # (n, h, w): one channel
        kernel = analytic_kernel(
            arch,
            depth,
            activation,
            sigma_w,
            parse_sigma_b(sigma_b),
            pooling=pooling,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
        )
    record = write_kernel_matrix(kernel, x, output_path, device=device, block_size=block_size, quiet=quiet)
    rows, columns = record["shape"]
    emit(
        record,
        as_json,
        f"{record['kernel']['kind']} kernel {rows} x {columns} -> {output_path} "
        f"in {record['seconds']:.2f} s; smallest eigenvalue {record['min_eigenvalue']:.3e} "
        f"({record['min_eigenvalue_method']})",
    )
