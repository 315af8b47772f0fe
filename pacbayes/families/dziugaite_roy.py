"""The Dziugaite-Roy / PBB family: a certified bound on a stochastic network N(w, diag(s)).

Dziugaite & Roy (2017), Eq. (4) with the sample-convergence step of Langford & Caruana (2001),
and the PBB objectives and data-dependent priors of Pérez-Ortiz et al. (JMLR 2021); the
formulas live in :mod:`pacbayes.bounds.stochastic`, the optimisation in :mod:`pacbayes.stochastic`.
"""

from pacbayes.families.base import Baseline, FamilyBase, FamilyOutcome, RunContext, stamped
from pacbayes.families.settings import DziugaiteRoySettings


class DziugaiteRoyFamily(FamilyBase):
    """Certifies the stochastic network N(w, diag(s)) (see :mod:`pacbayes.stochastic`)."""

    name = "dziugaite-roy"
    settings_type: type = DziugaiteRoySettings
    classifier = "stochastic-network"

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
            settings,
            delta=delta,
            seed=context.seed,
            sample=context.sample,
            device=context.device,
            cache_dir=context.cache_dir,
            quiet=context.quiet,
        )
        return certificate, certificate.error(test.x, test.labels, settings.test_draws, seed=context.seed + 1)


FAMILY = DziugaiteRoyFamily()
