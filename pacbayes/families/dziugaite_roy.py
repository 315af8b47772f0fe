"""The Dziugaite-Roy / PBB family: a certified bound on a stochastic network N(w, diag(s)).

Dziugaite & Roy (2017), Eq. (4) with the sample-convergence step of Langford & Caruana (2001),
and the PBB objectives and data-dependent priors of Pérez-Ortiz et al. (JMLR 2021); the
formulas live in :mod:`pacbayes.bounds.stochastic`, the optimisation in :mod:`pacbayes.stochastic`.
"""

from dataclasses import replace

from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, stamped
from pacbayes.families.settings import DziugaiteRoySettings
from pacbayes.stochastic.bound import DEFAULT_PRIOR_SCHEDULE
from pacbayes.stochastic.train import Schedule


class DziugaiteRoyFamily:
    """Certifies the stochastic network N(w, diag(s)) (see :mod:`pacbayes.stochastic`)."""

    name = "dziugaite-roy"
    settings_type = DziugaiteRoySettings
    classifier = "stochastic-network"

    def check(self, context: RunContext) -> None:
        """Any classifier with one logit (binary) or one per class is accepted."""

    def estimate(self, model, train, test, *, settings: DziugaiteRoySettings, context: RunContext) -> list:
        """The expected time of :meth:`run`'s phases (:mod:`pacbayes.families.estimates`)."""
        from pacbayes.families.estimates import dziugaite_roy_estimates

        return dziugaite_roy_estimates(model, train, test, settings, context)

    def run(
        self, model, train, test, *, delta: float, settings: DziugaiteRoySettings, context: RunContext
    ) -> FamilyOutcome:
        from pacbayes.device import threads_for_network

        with threads_for_network(model, context.device):
            certificate, test_error = self._certified(
                model, train, test, delta=delta, settings=settings, context=context
            )
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

    @staticmethod
    def _certified(model, train, test, *, delta: float, settings: DziugaiteRoySettings, context: RunContext) -> tuple:
        """The certificate and the stochastic net's Monte Carlo test error."""
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
            cache_dir=context.cache_dir,
            quiet=context.quiet,
        )
        return certificate, certificate.error(test.x, test.labels, settings.test_draws, seed=context.seed + 1)


FAMILY = DziugaiteRoyFamily()
