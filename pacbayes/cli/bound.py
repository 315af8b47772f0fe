"""``pacbayes bound``: bound arithmetic on numbers you already have (torch-free)."""

import math

import click

from pacbayes.bounds import MARGINAL_VARIANTS
from pacbayes.cli.app import emit
from pacbayes.cli.params import FINITE, json_option
from pacbayes.errors import PacBayesError


@click.group()
def bound() -> None:
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
def bound_marginal(log_evidence: float, m: int, delta: float, variant: str, as_json: bool) -> None:
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
def bound_kl_inverse(q: float, c: float, side: str, as_json: bool) -> None:
    """Exact inverse of the binary KL: max (or min) p with kl(q||p) <= c."""
    from pacbayes.bounds import kl_inverse_lower, kl_inverse_upper

    if math.isnan(c):
        raise PacBayesError("c must be a number >= 0, got nan")
    value = (kl_inverse_upper if side == "upper" else kl_inverse_lower)(q, c)
    emit({"value": value, "q": q, "c": c, "side": side}, as_json, f"kl^-1_{side}(q={q:g}, c={c:g}) = {value:.12f}")
