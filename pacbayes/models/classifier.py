"""Running a model as a classifier: its outputs, its predicted labels and its 0-1 error.

A classifier returns logits of shape (n,) or (n, 1) (one logit: binary, class 1 where the logit
is > 0, so the larger label is the positive class) or (n, C) (C logits: the argmax).
:func:`labels_from_logits` and :func:`count_mistakes` are the one prediction and 0-1 loss path
of the package: every error rate it reports (training, test, subspace, stochastic) goes through them.
"""

import weakref

import torch

from pacbayes.errors import InputError, one_line
from pacbayes.models.programs import ExportedModel, torch_nn_type
from pacbayes.seeds import seeded_rng

_PROBE = 64
"""Examples run twice, under two seeds, to detect a random forward."""
_DETERMINISTIC: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
"""Models whose forward has passed the check: it runs once per model object, not on every call
(:func:`model_outputs` runs inside training loops and per checkpoint)."""


def labels_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Predicted classes (int64, shape (n,)) from logits: (n,) or (n, 1) -> 1 where the logit > 0
    else 0; (n, C) -> the argmax."""
    if logits.dim() == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.dim() == 1:
        return (logits > 0).to(torch.int64)
    if logits.dim() == 2:
        return logits.argmax(dim=1)
    raise InputError(f"logits must have shape (n,), (n, 1) or (n, C), got {tuple(logits.shape)}")


def count_mistakes(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """How many inputs :func:`labels_from_logits` misclassifies (the summed 0-1 loss)."""
    if len(logits) != len(labels):
        raise InputError(f"{len(logits)} outputs but {len(labels)} labels; pass one label per input")
    predicted = labels_from_logits(logits)
    return int((predicted != labels.to(predicted.device)).sum())


def model_outputs(model, x, batch_size: int = 1024, *, seed: int = 0) -> torch.Tensor:
    """The model's outputs on ``x`` as an (n, K) tensor, computed in eval mode without gradients.

    The mode the model was in is restored afterwards. Inputs are cast to the dtype and device of
    the model's first floating parameter. A model that cannot take ``x`` (on any batch) -> one-line
    InputError. The forward passes run with torch's generators seeded with ``seed`` (the caller's
    streams are restored), so the outputs are the same on every run; a model whose outputs on the
    same inputs change with the seed (randomness in ``forward``: dropout exported in training mode,
    ``torch.rand``) is refused, since a certificate is about one deterministic classifier.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if not isinstance(x, torch.Tensor):
        raise InputError(f"model inputs must be a torch tensor, got {type(x).__name__}")
    if x.dim() == 0 or len(x) == 0:
        raise InputError("no examples to run the model on")
    dtype, device = _input_dtype_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _check_deterministic(model, x[:_PROBE].to(device=device, dtype=dtype), x.shape, seed)
            with seeded_rng(seed, cuda=device.type == "cuda"):
                outputs = [
                    _checked_forward(model, x[i : i + batch_size].to(device=device, dtype=dtype), i, x.shape)
                    for i in range(0, len(x), batch_size)
                ]
    finally:
        model.train(was_training)
    return torch.cat(outputs).cpu()


def output_dim(model, example_x) -> int:
    """K, the number of outputs per example (1 for a single-logit binary classifier)."""
    return int(model_outputs(model, example_x[:1]).shape[1])


def predict_labels(model, x, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class indices (int64) of the model on ``x`` (:func:`labels_from_logits`)."""
    return labels_from_logits(model_outputs(model, x, batch_size))


def zero_one_error(model, x, labels, batch_size: int = 1024) -> float:
    """Fraction of the inputs ``x`` whose predicted class is not ``labels`` (non-empty, one label each)."""
    if len(x) != len(labels) or len(x) == 0:
        raise InputError(f"x has {len(x)} rows but labels has {len(labels)}; pass matching, non-empty data")
    return count_mistakes(model_outputs(model, x, batch_size), labels) / len(labels)


def classification_error(model, ds, batch_size: int = 1024) -> float:
    """Fraction of ``ds`` (a pacbayes.data.Dataset) that the model misclassifies; the model's
    number of outputs must fit the data's number of classes."""
    outputs = model_outputs(model, ds.x, batch_size)
    k = outputs.shape[1]
    if k == 1 and ds.num_classes != 2:
        raise InputError(
            f"the model has one output (a binary classifier) but {ds.name} has "
            f"{ds.num_classes} classes; binarise the data"
        )
    if k > 1 and k != ds.num_classes:
        raise InputError(
            f"the model has {k} outputs but {ds.name} has {ds.num_classes} classes; use data with one class per output"
        )
    return count_mistakes(outputs, ds.labels) / len(outputs)


def _input_dtype_device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")


def _check_deterministic(model, probe, data_shape, seed: int) -> None:
    """Refuse a model whose outputs on the same few inputs differ between two seeds (once per model object)."""
    if model in _DETERMINISTIC:
        return
    runs = []
    for offset in (0, 1):
        with seeded_rng((seed + offset) % 2**63, cuda=probe.device.type == "cuda"):
            runs.append(_checked_forward(model, probe, 0, data_shape))
    scale = float(runs[0].abs().max()) if runs[0].numel() else 0.0
    if not torch.allclose(runs[0], runs[1], rtol=1e-4, atol=1e-6 * max(scale, 1.0)):
        raise InputError(
            "the model's outputs on the same inputs change from one run to the next (randomness in forward, "
            "such as dropout exported or scripted in training mode, or torch.rand); a certificate is about one "
            "deterministic classifier: export or save the model in eval mode, without random operations"
        )
    _DETERMINISTIC.add(model)


def _checked_forward(model, batch, start: int, data_shape) -> torch.Tensor:
    """The model's (n, K) outputs on ``batch`` (the examples from ``start`` on); a failing forward -> InputError."""
    try:
        return _as_matrix(model(batch))
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001  (a user's forward may raise anything)
        if start:
            raise InputError(
                f"the model fails on examples {start} to {start + len(batch) - 1} after running on the "
                f"earlier ones ({type(err).__name__}: {one_line(_strip_frames(err))}); its forward must "
                "accept every batch of the data"
            ) from None
        expected = _expected_input(model)
        hint = f"the model expects input {expected}" if expected else "the model rejects it"
        raise InputError(
            f"the data's examples have shape {tuple(data_shape[1:])} but {hint} "
            f"({one_line(_strip_frames(err))}); check that the data's format and "
            "normalisation match how the model was trained"
        ) from None


def _as_matrix(output) -> torch.Tensor:
    if isinstance(output, (tuple, list)) or not isinstance(output, torch.Tensor):
        raise InputError(f"the model returns a {type(output).__name__}; a classifier must return one tensor of logits")
    if not output.is_floating_point():
        raise InputError(
            f"the model returns {output.dtype} outputs; a classifier must return floating-point logits "
            "(return the scores, not the predicted labels)"
        )
    if output.dim() == 1:
        return output.reshape(-1, 1)
    if output.dim() != 2:
        raise InputError(f"the model's output has shape {tuple(output.shape)}; expected (n,) or (n, K) logits")
    if not bool(torch.isfinite(output).all()):
        raise InputError("the model's outputs contain NaN or infinite values")
    return output


def _expected_input(model):
    if isinstance(model, ExportedModel):
        return "(" + ", ".join("n" if i == 0 else str(s) for i, s in enumerate(model.input_shape)) + ")"
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            return f"with {module.in_features} features at the first linear layer"
        if isinstance(module, torch.nn.Conv2d):
            return f"with {module.in_channels} channels (n, {module.in_channels}, h, w)"
        if isinstance(module, torch.jit.ScriptModule) and torch_nn_type(module) in ("Linear", "Conv2d"):
            weight = module.weight
            return f"with {weight.shape[1]} {'features' if weight.dim() == 2 else 'channels'} at the first layer"
    return None


def _strip_frames(err) -> str:
    """The message of an error; TorchScript puts its interpreter traceback before the message."""
    return str(err).rsplit("RuntimeError: ", 1)[-1]
