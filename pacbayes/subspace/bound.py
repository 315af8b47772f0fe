"""The random-subspace compression bound on a decoded compressed model (Lotfi et al. 2022).

Prior: 2^-l over the prefix-free messages of each configuration (:mod:`pacbayes.subspace.coding`),
uniform over the configurations tried; P comes from the seed, and theta0 from the seed too, or
from training on a held-out prior part of S (:mod:`pacbayes.subspace.origin`), in which case the
bound is computed on the other points only.
Posterior: a point mass on the decoded model. KL = l ln 2 + ln(configurations), and the bound is the
minimum of the Occam, Catoni and PAC-Bayes-kl forms with delta split three ways
(:func:`pacbayes.bounds.compression_bound`). The empirical error is that of the model decoded from
the message, measured here; when the data are the encoder's own, it must equal the error the
encoder recorded (the decoding check).
"""

import torch

from pacbayes import checks
from pacbayes.bounds import compression_bound
from pacbayes.device import resolve_device
from pacbayes.errors import InputError, PacBayesError
from pacbayes.models import output_dim, zero_one_error
from pacbayes.results import BoundResult
from pacbayes.subspace.compressed import CompressedSubspaceModel
from pacbayes.subspace.evaluation import EVAL_BATCH, check_labels, data_fingerprint
from pacbayes.subspace.files import load_subspace_model
from pacbayes.subspace.origin import bound_part, describe, is_data_dependent

CERTIFIES = "the decoded compressed model"
CLASSIFIER = "compressed-model"


def why_vacuous(bound: dict, error: float, m: int, delta: float, classes: int) -> str:
    """Why the compression ``bound`` (from :func:`compression_bound`) is no better than chance
    1 - 1/classes ('' when it is): the message's code length against m, or the decoded model's own
    error, whichever still makes the bound vacuous when the other is taken away."""
    chance = 1.0 - 1.0 / classes
    if bound["value"] < chance:
        return ""
    nats = bound["kl"]
    if compression_bound(error, 0, m, delta)["value"] < chance:
        return (
            f"bound {bound['value']:.3f} >= chance {chance:.3f}: the message costs {nats:,.0f} nats (code length "
            f"and configurations) against m = {m:,} points ({nats / m:.3g} per point): a shorter message "
            "(a smaller --subspace-dim, fewer --levels) or more training points would help"
        )
    return (
        f"bound {bound['value']:.3f} >= chance {chance:.3f}: the decoded model errs on {error:.3f} of the m = "
        f"{m:,} points, vacuous even with a free message: a larger --subspace-dim, more training, or another "
        "architecture would help"
    )


def subspace_bound(
    source,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    delta: float,
    module: torch.nn.Module | None = None,
    extra_configurations: int = 1,
    test: tuple | None = None,
    device=None,
) -> list:
    """Certified bound on the 0-1 error of the model decoded from ``source``.

    ``source``: a :class:`CompressedSubspaceModel` or the path of a file saved by
    :func:`pacbayes.subspace.save_subspace_model` (then ``module`` supplies the architecture).
    ``x``, ``labels``: the m training points (int64 labels, 0/1 for a single logit); for a model
    whose theta0 was learned on part of them, all of them: the bound uses the other part.
    ``extra_configurations``: settings tried beyond those the model records (e.g. 3 values of d
    tried by hand -> 3). ``test``: optional (x_test, labels_test) whose error goes in details.
    Returns a one-element list of :class:`BoundResult` named "subspace".
    """
    extra_configurations = checks.sample_size(extra_configurations, name="extra_configurations", minimum=1)
    if not isinstance(source, CompressedSubspaceModel):
        if module is None:
            raise InputError("loading a subspace model file needs module=, a model of its architecture")
        source = load_subspace_model(source, module)
    device = resolve_device(device)
    model = source.decode().to(device)
    outputs = output_dim(model, x)
    check_labels(outputs, labels)
    x, labels = bound_part(model.origin, model.seed, x, labels)
    error = zero_one_error(model, x, labels, EVAL_BATCH)
    same_data = source.train_fingerprint == data_fingerprint(x, labels)
    if same_data and error != source.train_error:
        raise PacBayesError(
            f"decoding check failed: the decoded model errs on {error:.6f} of the training "
            f"set but the encoder recorded {source.train_error:.6f}; the decoder does not "
            "reproduce the coded model (re-encode it on this machine)"
        )
    configurations = source.configurations * int(extra_configurations)
    bound = compression_bound(error, source.code_bits, len(x), delta, configurations)
    details = {
        "d": model.dim,
        "seed": model.seed,
        "projection": model.projection_kind,
        "n_params": model.n_params,
        "levels": source.levels,
        "quantisation": source.quantisation,
        "code_bits": source.code_bits,
        "kl_nats": bound["kl"],
        "configurations": configurations,
        "train_error": error,
        "m": len(x),
        "origin": model.origin,
        "best_form": bound["best_form"],
        "forms": bound["forms"],
        "union_over_forms": "delta split equally over the forms; the minimum is certified",
        "why_vacuous": why_vacuous(bound, error, len(x), delta, 2 if outputs == 1 else outputs),
        "decoding_check": "passed (same data as the encoder)"
        if same_data
        else "not applicable (data differ from the encoder's)",
    }
    if source.training is not None:
        details["training"] = source.training
    if test is not None:
        details["test_error"] = zero_one_error(model, test[0], test[1], EVAL_BATCH)
    assumptions = (
        "training points are iid draws from the distribution the bound is about",
        describe(model.origin),
        f"at most {configurations} configurations (d, levels, fine-tuning epochs, seeds, ...) were tried in all",
    )
    coded = "z = 0, theta0 itself" if source.quantisation == "origin" else f"{source.levels} levels"
    learned = ""
    if is_data_dependent(model.origin):
        learned = f", theta0 learned on {model.origin['prior_points']} held-out points"
    return [
        BoundResult(
            name="subspace",
            value=bound["value"],
            certified=True,
            certifies=f"{CERTIFIES} (d = {model.dim}, {coded}, {source.code_bits} bits{learned})",
            delta=bound["delta"],
            assumptions=assumptions,
            details=details,
            family="subspace",
            classifier=CLASSIFIER,
        )
    ]
