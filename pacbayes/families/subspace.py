"""The random-subspace compression family (Lotfi et al. 2022): certifies a decoded compressed model.

The bound is :func:`pacbayes.bounds.compression_bound` (a point-mass posterior on the message;
KL = l ln 2 + ln configurations); training, quantisation and coding live in :mod:`pacbayes.subspace`.
"""

from dataclasses import replace

from pacbayes.attempts import count_attempt
from pacbayes.errors import InputError
from pacbayes.families.base import Baseline, FamilyBase, FamilyOutcome, RunContext, cli_fields, stamped
from pacbayes.families.settings import SubspaceSettings
from pacbayes.subspace.training import level_grid


class SubspaceFamily(FamilyBase):
    """Certifies the decoded compressed model (see :mod:`pacbayes.subspace`)."""

    name = "subspace"
    settings_type: type = SubspaceSettings
    classifier = "compressed-model"

    def estimate(self, model, train, test, *, settings: SubspaceSettings, context: RunContext) -> list:
        """The expected time of :meth:`run`'s phases (:mod:`pacbayes.families.estimates`)."""
        from pacbayes.families.estimates import subspace_estimates

        return subspace_estimates(model, train, settings, context)

    def run(
        self, model, train, test, *, delta: float, settings: SubspaceSettings, context: RunContext
    ) -> FamilyOutcome:
        from pacbayes.subspace import subspace_bound

        compressed, extra_configurations = settings.compressed, settings.extra_configurations
        if compressed is not None:
            _refuse_training_options(settings)
        if compressed is None:
            if settings.dim is None:
                raise InputError(
                    "the subspace bound needs a subspace model file as MODEL (with --architecture) "
                    "or --subspace-dim d to train a compressed model from a seeded random start"
                )
            level_grid(settings.levels, settings.dim)  # before the attempt is counted or anything is trained
        attempt = count_attempt(  # before training: its draws and the bound depend on the seed
            settings.attempts_ledger,
            self.name,
            sample=context.sample,
            data=(train.x, train.labels),
            statement=_statement(settings, compressed),
            model=model,
            weights=settings.distill,
            seed=context.seed,
            reserves=False,
        )
        if compressed is None:
            compressed = _trained(model, train, settings, context)
            extra_configurations = 1  # already recorded in the trained model's configuration count
        results = [
            replace(
                result,
                delta={**attempt.reserve(delta), **result.delta},
                assumptions=result.assumptions + attempt.assumptions(),
                details={**result.details, "attempt": attempt.number},
            )
            for result in subspace_bound(
                compressed,
                train.x,
                train.labels,
                delta=attempt.share(delta),
                test=(test.x, test.labels),
                extra_configurations=extra_configurations,
            )
        ]
        details = results[0].details
        train_label = "compressed subspace model train error"
        if details["m"] < len(train.labels):  # theta0 was learned on the other points
            train_label += f" (on the bound's {details['m']} points)"
        return FamilyOutcome(
            bounds=stamped(results, self),
            diagnostics=details,
            baselines=(
                Baseline("subspace_test_error", details["test_error"], "compressed subspace model test error"),
                Baseline("subspace_train_error", details["train_error"], train_label),
            ),
        )


def _trained(model, train, settings: SubspaceSettings, context: RunContext):
    """The compressed model trained on ``train`` with ``model``'s architecture (with the run's thread count)."""
    from pacbayes.device import threads_for_network
    from pacbayes.subspace import train_subspace_model

    with threads_for_network(model, context.device):
        return train_subspace_model(
            model,
            train.x,
            train.labels,
            settings,
            seed=context.seed,
            quiet=context.quiet,
            cache_dir=context.cache_dir,
        )


NOT_TRAINING = ("extra_configurations", "attempts_ledger")
"""The settings that do not say how a compressed model is trained."""


def _statement(settings: SubspaceSettings, compressed) -> dict:
    """What this family's statement is about besides S, for the attempts ledger's key: d, the level
    grid, every training setting, the learned-origin split and --configurations; for a compressed model
    given as MODEL, also its d, levels, quantisation, configurations and origin (not its seed or message)."""
    statement = {f.name: getattr(settings, f.name) for f in cli_fields(SubspaceSettings) if f.name != "attempts_ledger"}
    if compressed is not None:
        origin = compressed.model.origin
        statement["compressed"] = {
            "dim": compressed.model.dim,
            "levels": compressed.levels,
            "quantisation": compressed.quantisation,
            "configurations": compressed.configurations,
            "origin": [origin.get("kind"), origin.get("prior_split")],
        }
    return statement


def _refuse_training_options(settings: SubspaceSettings) -> None:
    """A compressed model is certified as it was coded: options that would train one are refused,
    not silently ignored."""
    defaults = SubspaceSettings()
    given = [
        f.metadata["cli"].flag
        for f in cli_fields(SubspaceSettings)
        if f.name not in NOT_TRAINING and getattr(settings, f.name) != getattr(defaults, f.name)
    ]
    if given:
        raise InputError(
            f"{', '.join(given)} set how a compressed model is trained, but MODEL is already a compressed "
            "subspace model; drop them, or give an ordinary model to train one"
        )


FAMILY = SubspaceFamily()
