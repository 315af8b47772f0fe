"""The marginal-likelihood family as a :class:`~pacbayes.families.base.BoundFamily` (see :mod:`pacbayes.marginal`)."""

from dataclasses import replace

from pacbayes.data import signs
from pacbayes.errors import InputError
from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, Tracked, stamped
from pacbayes.marginal import CLASSIFIER, MarginalSettings, marginal_bounds, marginal_estimate


def _for_run(settings: MarginalSettings, context: RunContext) -> MarginalSettings:
    """The settings with the run's seed, progress and (when given) device."""
    return replace(settings, seed=context.seed, quiet=context.quiet,
                   device=settings.device if context.device is None else context.device)


class MarginalFamily:
    """Certifies the Gibbs error of Q* (see the module docstring); needs a realisable, single-logit fit."""

    name = "marginal"
    settings_type = MarginalSettings
    classifier = CLASSIFIER

    def check(self, context: RunContext) -> None:
        """The prior is one GP (a single logit), and the bound is for the realisable case."""
        self.check_outputs(context.outputs)
        if context.train_error > 0.0:
            raise InputError(f"training error is {context.train_error:.4f} > 0 but the marginal-likelihood bound "
                             "is for the realisable case: train to zero training error (dropping misfit points "
                             "would make S non-iid, so there is no such option)")

    @staticmethod
    def check_outputs(outputs: int) -> None:
        if outputs != 1:
            raise InputError(f"the marginal-likelihood bound needs a single-logit binary model (its prior is "
                             f"one GP); this model has {outputs} outputs: use another bound family")

    def run(self, model, train, test, *, delta: float, settings: MarginalSettings,
            context: RunContext) -> FamilyOutcome:
        self.check(context)
        results, diagnostics = marginal_bounds(model, train.x, signs(train.labels), test.x, signs(test.labels),
                                               delta=delta, settings=_for_run(settings, context))
        return FamilyOutcome(bounds=stamped(results, self), diagnostics=diagnostics, baselines=(
            Baseline("q_star_test_error_ep", diagnostics["q_star_test_error_ep"],
                     "Q* estimated test error (EP predictive)"),))

    def track(self, model, train, *, delta: float, settings: MarginalSettings, context: RunContext,
              cache: dict) -> Tracked:
        """The bound at the EP estimate of ln P(S) (kernel and EP once, cached: they do not depend on the
        weights); it applies to the network only once it fits S. ``delta`` is what :meth:`run` would get."""
        self.check_outputs(context.outputs)
        if "value" not in cache:
            cache["log_evidence"], cache["value"] = marginal_estimate(model, train.x, signs(train.labels),
                                                                      delta=delta,
                                                                      settings=_for_run(settings, context))
        fits = context.train_error == 0.0
        return Tracked(values={"marginal-ep": cache["value"]}, certified={"marginal-ep": False}, applies=fits,
                       note="" if fits else "marginal: the network does not fit S yet (training error > 0), so "
                                            "the realisable bound does not apply to it")


FAMILY = MarginalFamily()
