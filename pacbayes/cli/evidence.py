"""``pacbayes evidence``: ln P(S) of labels under a GP prior with a given kernel, estimated and certified."""

from typing import Any

import click

from pacbayes.cli.app import emit
from pacbayes.cli.params import DEVICE, FINITE, SEED, json_option
from pacbayes.defaults import DEFAULT_PROPOSAL, EP_TOL, MULTICLASS_METHODS, PROPOSALS
from pacbayes.defaults import EVIDENCE_SAMPLES as DEFAULT_SAMPLES


@click.command("evidence")
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
@click.option(
    "--upper/--no-upper",
    default=True,
    show_default=True,
    help="Compute the deterministic upper bound psi* (minimax tilting); --no-upper skips it: the certified "
    "lower bound is unchanged and, with the ep-cavity proposal, several times faster at large m.",
)
@click.option(
    "--certified-method",
    type=click.Choice(MULTICLASS_METHODS),
    default="auto",
    show_default=True,
    help="Multi-class certified sampler: the dense (C-1)m orthant, or point by point without it (looser, no "
    "psi*); auto: dense up to (C-1)m = 9,000.",
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
def evidence_command(kernel_path: str, labels_path: str, as_json: bool, **options: Any) -> None:
    """ln P(S) of the labels under the GP prior N(0, K + jitter I) (one per logit for C classes):
    EP estimate and certified sandwich."""
    from pacbayes.data.arrays import load_npy
    from pacbayes.evidence.run import check_method, run_evidence

    check_method(options["method"], options["delta_prime"])  # before reading the files
    K, y = load_npy(kernel_path, "kernel", kinds="iuf", square=True), load_npy(labels_path, "labels")
    run = run_evidence(K, y, **options)  # every other flag is a keyword of run_evidence
    emit(run.to_dict(), as_json, run.text())
