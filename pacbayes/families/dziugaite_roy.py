"""The Dziugaite-Roy / PBB family: a certified bound on a stochastic network N(w, diag(s)).

Dziugaite & Roy (2017), Eq. (4) with the sample-convergence step of Langford & Caruana (2001),
and the PBB objectives and data-dependent priors of Pérez-Ortiz et al. (JMLR 2021); the
formulas live in :mod:`pacbayes.bounds.stochastic`, the optimisation in :mod:`pacbayes.stochastic`.
"""

from dataclasses import dataclass, replace
from typing import Optional

from pacbayes.attempts import ledger_option
from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, option, stamped
from pacbayes.stochastic.bound import DEFAULT_PRIOR_DROPOUT, DEFAULT_PRIOR_SCHEDULE, DEFAULT_PRIOR_STD, POSTERIOR_STARTS
from pacbayes.stochastic.local import MC_SAMPLINGS
from pacbayes.stochastic.network import DEFAULT_SIGMOID_TEMPERATURE
from pacbayes.stochastic.train import OBJECTIVES, SURROGATES, Schedule


@dataclass(frozen=True)
class DziugaiteRoySettings:
    """The Dziugaite-Roy / PBB family's settings; see :func:`pacbayes.stochastic.certify_stochastic_network`.

    init_state: path of the weights at initialisation (or a state dict); init_seed: re-create them
    from the recorded seed; neither: a zero-centred prior (valid, looser, labelled in the report).
    posterior_start "prior" (default) certifies a stochastic net learned from the prior (PBB, the
    tight certificate); "model" one around MODEL's weights (Dziugaite & Roy); fixed_mean holds the
    mean at MODEL's weights. The report names the mode in ``details.mode``.
    test_draws: posterior draws used to report the stochastic net's test error (a baseline).
    """

    init_state: object = option(
        None, "--init", "Weights at initialisation (weights-only .pt) for the prior mean.", path=True
    )
    init_seed: Optional[int] = option(None, "--init-seed", "Re-create the initial weights from this recorded seed.")
    objective: str = option("dr", "--objective", "Dziugaite-Roy (dr) or a PBB objective.", choices=OBJECTIVES)
    surrogate: str = option(
        "auto",
        "--surrogate",
        "Training risk: auto (logistic for dr, bounded cross-entropy for PBB) or sigmoid (smooth 0-1 loss).",
        choices=SURROGATES,
    )
    sigmoid_temperature: float = option(
        DEFAULT_SIGMOID_TEMPERATURE, "--sigmoid-temperature", "Temperature of --surrogate sigmoid."
    )
    posterior_start: str = option(
        "prior",
        "--posterior-start",
        "Start the posterior at the prior (a net learned from the prior, KL 0 at the start) or at MODEL's weights.",
        choices=POSTERIOR_STARTS,
    )
    prior_split: float = option(
        0.0, "--prior-split", "Fraction of S used to learn the prior (the bound uses the rest)."
    )
    prior_std: float = option(
        DEFAULT_PRIOR_STD, "--prior-std", "Prior standard deviation, fixed before seeing S (no lambda search)."
    )
    lambda_grid: bool = option(
        False, "--lambda-grid", "Search the prior variance on Dziugaite-Roy's grid (union bound, ~2 ln j nats)."
    )
    prior_epochs: int = option(
        DEFAULT_PRIOR_SCHEDULE.epochs, "--prior-epochs", "Epochs of ERM learning the prior mean (with --prior-split)."
    )
    prior_dropout: float = option(
        DEFAULT_PRIOR_DROPOUT, "--prior-dropout", "Dropout after the activation layers while learning the prior."
    )
    posterior_epochs: int = option(Schedule().epochs, "--posterior-epochs", "Epochs of posterior optimisation.")
    mc_samples: int = option(1000, "--mc-samples", "Posterior draws for the sample-convergence bound.")
    mc_sampling: str = option(
        "network",
        "--mc-sampling",
        "Monte Carlo draws: one network per draw on every point, or a fresh draw per point (Linear/activation "
        "Sequential models; n m independent draws).",
        choices=MC_SAMPLINGS,
    )
    per_point_training: bool = option(
        False,
        "--per-point-training",
        "Train the posterior with a fresh weight draw per input (local reparameterisation; Linear/activation "
        "Sequential models).",
    )
    fixed_mean: bool = option(False, "--fixed-mean", "Keep the posterior mean at MODEL's weights.")
    attempts_ledger: Optional[str] = ledger_option()
    test_draws: int = 20


class DziugaiteRoyFamily:
    """Certifies the stochastic network N(w, diag(s)) (see :mod:`pacbayes.stochastic`)."""

    name = "dziugaite-roy"
    settings_type = DziugaiteRoySettings
    classifier = "stochastic-network"

    def check(self, context: RunContext) -> None:
        """Any classifier with one logit (binary) or one per class is accepted."""

    def run(
        self, model, train, test, *, delta: float, settings: DziugaiteRoySettings, context: RunContext
    ) -> FamilyOutcome:
        from pacbayes.stochastic import certify_stochastic_network

        certificate = certify_stochastic_network(
            model,
            train.x,
            train.labels,
            delta=delta,
            init_state=settings.init_state,
            init_seed=settings.init_seed,
            objective=settings.objective,
            surrogate=settings.surrogate,
            sigmoid_temperature=settings.sigmoid_temperature,
            posterior_start=settings.posterior_start,
            prior_split=settings.prior_split,
            prior_std=settings.prior_std,
            lambda_grid=settings.lambda_grid,
            prior_dropout=settings.prior_dropout,
            mc_samples=settings.mc_samples,
            mc_sampling=settings.mc_sampling,
            per_point_training=settings.per_point_training,
            seed=context.seed,
            fixed_mean=settings.fixed_mean,
            schedule=Schedule(epochs=settings.posterior_epochs),
            prior_schedule=replace(DEFAULT_PRIOR_SCHEDULE, epochs=settings.prior_epochs),
            attempts_ledger=settings.attempts_ledger,
            sample=context.sample,
            device=context.device,
            quiet=context.quiet,
        )
        test_error = certificate.error(test.x, test.labels, settings.test_draws, seed=context.seed + 1)
        draws = settings.test_draws
        return FamilyOutcome(
            bounds=stamped([certificate.result], self),
            diagnostics=certificate.result.details,
            baselines=(
                Baseline(
                    "stochastic_test_error",
                    test_error,
                    f"stochastic net N(w, s) test error (MC, {draws} draws; {certificate.result.details['mode']})",
                ),
                Baseline("stochastic_test_draws", draws, ""),
            ),
        )


FAMILY = DziugaiteRoyFamily()
