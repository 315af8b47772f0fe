"""The random-subspace compression family (Lotfi et al. 2022): certifies a decoded compressed model.

The bound is :func:`pacbayes.bounds.compression_bound` (a point-mass posterior on the message;
KL = l ln 2 + ln configurations); training, quantisation and coding live in :mod:`pacbayes.subspace`.
"""

from dataclasses import dataclass, replace
from typing import Optional

from pacbayes.attempts import count_attempt, ledger_option
from pacbayes.errors import InputError
from pacbayes.families.base import Baseline, FamilyOutcome, RunContext, cli_fields, option, stamped
from pacbayes.subspace.training import (
    DEFAULT_EPOCHS,
    DEFAULT_LEVELS,
    DEFAULT_PATIENCE,
    DEFAULT_PRIOR_EPOCHS,
    DEFAULT_QAT_EPOCHS,
    DEFAULT_QAT_PATIENCE,
    DEFAULT_RATE_WEIGHT,
    MAX_LEVELS,
    level_grid,
)


@dataclass(frozen=True)
class SubspaceSettings:
    """The compression family's settings: a compressed model to certify, or d to train one.

    compressed: a pacbayes.subspace.CompressedSubspaceModel (e.g. loaded from a subspace file);
    dim: otherwise train one in a d-dimensional subspace from a seeded random theta0 (never the
    trained weights), distilling from the user's model when ``distill``, for at most ``epochs``
    epochs (to convergence with ``patience``), at learning rate ``lr``, with at most ``qat_epochs``
    of quantisation-aware fine-tuning (to convergence with ``qat_patience``, the code length
    weighted by ``rate_weight``) for each level count in ``levels`` (the grid is union-bounded).
    prior_split: with a fraction in (0, 1), theta0 is first trained for ``prior_epochs`` on that part
    of S and the bound uses the rest (a data-dependent prior; 0: seeded theta0, all of S).
    extra_configurations: hyper-parameter settings tried beyond the recorded levels grid: count every
    value of d, epochs, lr, ... you tried. attempts_ledger: JSON-lines file counting runs on this data and
    these settings (any seed; :mod:`pacbayes.attempts`): attempt k spends 6 delta / (pi^2 k^2), so
    keeping the best seed is valid (without one, a run spends the family's whole share and
    --configurations stands for every try).
    """

    compressed: object = None
    dim: Optional[int] = option(
        None,
        "--subspace-dim",
        "Train a compressed model in a random d-dimensional subspace from a seeded "
        "random start (the bound is for that model).",
    )
    distill: bool = option(False, "--subspace-distill", "Distil the subspace model from MODEL's predictions.")
    epochs: int = option(
        DEFAULT_EPOCHS, "--subspace-epochs", "Most epochs of subspace training (it stops earlier at convergence)."
    )
    patience: int = option(
        DEFAULT_PATIENCE,
        "--subspace-patience",
        "Stop once the training loss has not improved for this many epochs (0: run all --subspace-epochs).",
    )
    lr: float = option(0.05, "--subspace-lr", "Adam learning rate of subspace training (fine-tuning uses lr / 5).")
    qat_epochs: int = option(
        DEFAULT_QAT_EPOCHS,
        "--subspace-qat-epochs",
        "Epochs of quantisation-aware fine-tuning per level count; every epoch's model is a candidate "
        "(the best bound is kept, all are counted in the configurations).",
    )
    qat_patience: int = option(
        DEFAULT_QAT_PATIENCE or 0,
        "--subspace-qat-patience",
        "Stop fine-tuning once its loss has not improved for this many epochs (0: run all --subspace-qat-epochs).",
    )
    rate_weight: float = option(
        DEFAULT_RATE_WEIGHT,
        "--subspace-rate-weight",
        "Weight of the code length in fine-tuning (w ln 2 / m per bit; 0: cross-entropy only).",
    )
    levels: tuple = option(
        DEFAULT_LEVELS,
        "--subspace-levels",
        "Quantisation level counts tried (each counted in the configurations).",
        limits=(1, MAX_LEVELS),
    )
    prior_split: float = option(
        0.0,
        "--subspace-prior-split",
        "Fraction of S on which theta0 is trained before the subspace (a data-dependent prior; "
        "the bound uses the rest; 0: a seeded random theta0 and all of S).",
    )
    prior_epochs: int = option(
        DEFAULT_PRIOR_EPOCHS, "--subspace-prior-epochs", "Epochs of training theta0 (with --subspace-prior-split)."
    )
    extra_configurations: int = option(
        1, "--configurations", "Number of hyper-parameter settings (d, seeds, ...) you tried; union-bounded."
    )
    attempts_ledger: Optional[str] = ledger_option()


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
            compressed = train_subspace_model(
                model,
                train.x,
                train.labels,
                dim=settings.dim,
                seed=context.seed,
                levels=tuple(int(v) for v in settings.levels),
                epochs=settings.epochs,
                patience=settings.patience or None,
                lr=settings.lr,
                qat_epochs=settings.qat_epochs,
                qat_patience=settings.qat_patience or None,
                rate_weight=settings.rate_weight,
                distill=settings.distill,
                prior_split=settings.prior_split,
                prior_epochs=settings.prior_epochs,
                quiet=context.quiet,
                extra_configurations=extra_configurations,
            )
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
