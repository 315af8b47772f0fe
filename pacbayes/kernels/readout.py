"""The linear read-out of a module, integrated out of the Monte Carlo NNGP (docs/kernels.md#monte-carlo-kernel).

When a network's last operation is a ``torch.nn.Linear`` read-out f = W phi + b whose weights and bias
are drawn independently of everything before it, with mean zero, per-entry variances v_w and v_b, then
for one initialisation of the layers below it (penultimate features phi_s, H of them)

    E_{W, b}[ f_c(x) f_c(x') | phi_s ] = v_w phi_s(x) . phi_s(x') + v_b,

exactly, whatever the read-out's distribution (only its second moments enter). Averaging this over
initialisations has the same expectation as averaging f_c(x) f_c(x') (the logit estimator), with a
smaller variance, and rank up to samples x H instead of samples x C.

PyTorch's default init of ``nn.Linear(H, C)`` draws weight and bias entries from U(-1/sqrt(H), 1/sqrt(H)):
v_w = v_b = 1 / (3 H) (v_b = 0 without a bias).
"""

from dataclasses import dataclass

import torch

from pacbayes.models import ExportedModel


@dataclass(frozen=True)
class Readout:
    """A module's linear read-out: its qualified name, width H, outputs C and the per-entry variances
    of its weight and bias under the initialisation the kernel draws."""

    name: str
    width: int
    outputs: int
    weight_variance: float
    bias_variance: float


def find_readout(template: torch.nn.Module, probe: torch.Tensor, default_init: bool) -> tuple:
    """(Readout, None) when ``template``'s output is the output of its last ``nn.Linear`` submodule,
    called once on (n, H) features and re-drawn by ``nn.Linear.reset_parameters``; else (None, reason).

    The output is checked on ``probe`` (a few inputs) with the template's current parameters."""
    if not default_init:
        return None, "a custom init_fn: the read-out's variances are not known"
    if isinstance(template, (torch.jit.ScriptModule, ExportedModel)):
        return None, "the model is a traced program, with no torch.nn.Linear read-out module"
    linears = [(name, layer) for name, layer in template.named_modules() if isinstance(layer, torch.nn.Linear)]
    if not linears:
        return None, "the model has no torch.nn.Linear layer"
    name, layer = linears[-1]
    if type(layer).reset_parameters is not torch.nn.Linear.reset_parameters:
        return None, f"the last linear layer {name} draws its own initialisation"
    if _shared(template, layer):
        return None, f"the last linear layer {name} or its parameters are shared"
    reason = _output_reason(template, layer, name, probe)
    if reason is not None:
        return None, reason
    width = layer.in_features
    bias = 0.0 if layer.bias is None else 1.0 / (3 * width)
    return Readout(name, width, layer.out_features, 1.0 / (3 * width), bias), None


def _shared(template: torch.nn.Module, layer: torch.nn.Module) -> bool:
    """Whether ``layer`` is registered twice or one of its parameters is also registered elsewhere."""
    copies = sum(1 for _, module in template.named_modules(remove_duplicate=False) if module is layer)
    own = {id(p) for p in layer.parameters()}
    uses = sum(1 for _, p in template.named_parameters(remove_duplicate=False) if id(p) in own)
    return copies > 1 or uses > len(own)


def _output_reason(template, layer, name: str, probe: torch.Tensor):
    """None when the template's output on ``probe`` is ``layer``'s output, from one call on (n, H) inputs."""
    calls = []
    handle = layer.register_forward_hook(lambda module, args, output: calls.append((args[0], output)))
    try:
        with torch.no_grad():
            output = template(probe)
    except Exception as err:  # noqa: BLE001  (the Monte Carlo kernel reports the failure on its own pass)
        return f"the model failed on the probe inputs ({type(err).__name__})"
    finally:
        handle.remove()
    if len(calls) != 1:
        return f"the last linear layer {name} runs {len(calls)} times per forward pass"
    features, logits = calls[0]
    n = probe.shape[0]
    if features.dim() != 2:
        return f"the last linear layer {name} acts on features of shape {tuple(features.shape[1:])}, not (H,)"
    same = (
        isinstance(output, torch.Tensor)
        and output.dim() <= 2
        and output.numel() == logits.numel()
        and torch.equal(output.reshape(n, -1), logits.reshape(n, -1))
    )
    return None if same else f"the model's output is not the output of its last linear layer {name}"
