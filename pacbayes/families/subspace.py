"""The random-subspace compression family (Lotfi et al. 2022): certifies a decoded compressed model.

The bound is :func:`pacbayes.bounds.compression_bound` (a point-mass posterior on the message;
KL = l ln 2 + ln configurations); training, quantisation and coding live in :mod:`pacbayes.subspace`.
"""

from dataclasses import dataclass
from typing import Optional

from pacbayes.errors import InputError
from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, option, stamped


@dataclass(frozen=True)
class SubspaceSettings:
    """The compression family's settings: a compressed model to certify, or d to train one.

    compressed: a pacbayes.subspace.CompressedSubspaceModel (e.g. loaded from a subspace file);
    dim: otherwise train one in a d-dimensional subspace from a seeded random theta0 (never the
    trained weights), distilling from the user's model when ``distill``.
    extra_configurations: hyper-parameter settings tried beyond the recorded levels grid.
    """

    compressed: object = None
    dim: Optional[int] = option(
        None,
        "--subspace-dim",
        "Train a compressed model in a random d-dimensional subspace from a seeded "
        "random start (the bound is for that model).",
    )
    distill: bool = option(False, "--subspace-distill", "Distil the subspace model from MODEL's predictions.")
    extra_configurations: int = option(
        1, "--configurations", "Number of hyper-parameter settings (d, seeds, ...) you tried; union-bounded."
    )


class SubspaceFamily:
    """Certifies the decoded compressed model (see :mod:`pacbayes.subspace`)."""

    name = "subspace"
    settings_type = SubspaceSettings
    classifier = "compressed-model"

    def check(self, context: RunContext) -> None:
        """Any classifier with one logit (binary) or one per class is accepted."""

    def run(
        self, model, train, test, *, delta: float, settings: SubspaceSettings, context: RunContext
    ) -> FamilyOutcome:
        from pacbayes.subspace import subspace_bound, train_subspace_model

        compressed, extra_configurations = settings.compressed, settings.extra_configurations
        if compressed is None:
            if settings.dim is None:
                raise InputError(
                    "the subspace bound needs a subspace model file as MODEL (with --architecture) "
                    "or --subspace-dim d to train a compressed model from a seeded random start"
                )
            compressed = train_subspace_model(
                model,
                train.x,
                train.labels,
                dim=settings.dim,
                seed=context.seed,
                distill=settings.distill,
                quiet=context.quiet,
                extra_configurations=extra_configurations,
            )
            extra_configurations = 1  # already recorded in the trained model's configuration count
        results = subspace_bound(
            compressed,
            train.x,
            train.labels,
            delta=delta,
            test=(test.x, test.labels),
            extra_configurations=extra_configurations,
        )
        details = results[0].details
        return FamilyOutcome(
            bounds=stamped(results, self),
            diagnostics=details,
            baselines=(
                Baseline("subspace_test_error", details["test_error"], "compressed subspace model test error"),
                Baseline("subspace_train_error", details["train_error"], "compressed subspace model train error"),
            ),
        )


FAMILY = SubspaceFamily()
