"""ln P(S) of a kernel and labels in one call: the EP estimate, the certified sandwich, or both.

:func:`run_evidence` checks the memory budget, runs the requested estimators under the thread count
that suits the orthant's size, and returns an :class:`EvidenceRun`, whose ``to_dict`` is the record
``pacbayes evidence --json`` prints. Its values are the results' own summaries
(:data:`pacbayes.results.EP_SUMMARY`, :data:`pacbayes.results.CERTIFIED_SUMMARY`, the keys of the
certify report's diagnostics) under the flat names below.
"""

from dataclasses import dataclass
from typing import Any

from pacbayes.device import resolve_device, threads_for
from pacbayes.errors import InputError
from pacbayes.evidence.budget import evidence_budgets, orthant_dimension
from pacbayes.evidence.label_model import label_model
from pacbayes.progress import announce

METHODS = ("ep", "certified", "all")

EP_KEYS = {
    "log_evidence_ep": "log_evidence",
    "sweeps": "sweeps",
    "ep_converged": "converged",
    "ep_final_change": "final_change",
    "seconds_ep": "seconds",
}
"""Flat record key -> the EP result's summary key."""

CERTIFIED_KEYS = {
    "log_evidence_lower": "lower",
    "log_evidence_upper": "upper",
    "log_evidence_upper_note": "upper_note",
    "delta_prime": "delta_prime",
    "log_estimate": "log_estimate",
    "grad_norm": "grad_norm",
    "samples": "samples",
    "proposal": "proposal",
    "seed": "seed",
    "relative_std": "relative_std",
    "effective_samples": "effective_samples",
    "seconds_certified": "seconds",
}
"""Flat record key -> the certified result's summary key (and its relative standard deviation)."""

_UNSET = ("log_evidence_ep", "log_evidence_lower", "log_evidence_upper", "log_evidence_upper_note")
_UNSET_AFTER = ("delta_prime", "proposal", "sweeps")


@dataclass
class EvidenceRun:
    """What :func:`run_evidence` computed: ``ep`` and ``certified`` are None when not requested."""

    method: str
    m: int
    classes: int
    jitter: float
    prior: str
    ep: Any | None = None
    certified: Any | None = None

    def to_dict(self) -> dict[str, Any]:
        """The flat record: the inputs, then every requested estimate (None for those not run)."""
        record: dict[str, Any] = {"method": self.method, "m": self.m, "classes": self.classes, "jitter": self.jitter}
        record.update(prior=self.prior, **dict.fromkeys(_UNSET), **dict.fromkeys(_UNSET_AFTER), seconds=0.0)
        if self.ep is not None:
            summary = self.ep.to_dict()
            record.update({key: summary[name] for key, name in EP_KEYS.items()})
            record["seconds"] += self.ep.seconds
        if self.certified is not None:
            summary = dict(self.certified.to_dict(), relative_std=self.certified.relative_std)
            record.update({key: summary[name] for key, name in CERTIFIED_KEYS.items()})
            record["seconds"] += self.certified.seconds
        return record

    def lines(self) -> list[str]:
        """The result for people: one line per estimate."""
        lines = []
        ep, cert = self.ep, self.certified
        if ep is not None:
            lines.append(
                f"  estimate (EP, not a bound):  {ep.log_evidence:.6f}   "
                f"[{ep.sweeps} sweeps, relative change {ep.final_change:.1e}, {ep.seconds:.2f} s]"
            )
        if cert is not None:
            lines.append(
                f"  certified lower:             {cert.lower:.6f}   [probability >= "
                f"{1 - cert.delta_prime:g}; ln Z_hat {cert.log_estimate:.6f} from {cert.samples} "
                f"{cert.proposal} samples, seed {cert.seed}]"
            )
            lines.append(
                f"  upper (psi*, deterministic): {cert.upper:.6f}   [|grad_x psi| {cert.grad_norm:.1e}]"
                if cert.upper is not None
                else f"  upper (psi*, deterministic): {_without_upper(cert.upper_reason)}"
            )
        return lines

    def text(self) -> str:
        """A title line naming the prior and m, then :meth:`lines`."""
        return f"ln P(S) under the prior {self.prior}, m = {self.m}:\n" + "\n".join(self.lines())


def _without_upper(reason: str) -> str:
    """Why there is no psi*: a run that did not ask for it says so; otherwise it was not certified."""
    return reason if reason.startswith("not computed") else f"not certified: {reason}"


def check_method(method: str, delta_prime: float) -> None:
    """InputError unless ``method`` is one of METHODS and, when it certifies, ``delta_prime`` is in (0, 1)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "ep" and not 0.0 < delta_prime < 1.0:
        raise InputError(f"--delta-prime must be in (0, 1), got {delta_prime}")


def run_evidence(
    K: Any,
    labels: Any,
    *,
    classes: int = 2,
    method: str = "all",
    proposal: str,
    delta_prime: float,
    seed: int,
    samples: int,
    jitter: float,
    tol: float,
    device: str = "cpu",
    quiet: bool = False,
    upper: bool = True,
    certified_method: str = "auto",
) -> EvidenceRun:
    """ln P(S) of ``labels`` under the GP prior N(0, K + jitter I) (one per logit for ``classes`` > 2):
    ``method`` "ep" (:meth:`~pacbayes.evidence.label_model.BinaryLabels.ep`), "certified" (the sandwich of
    :func:`pacbayes.evidence.certified_log_evidence`) or "all" (both; the certified sampler then reuses the EP).
    ``upper`` False skips psi* (the lower bound does not use it); ``certified_method`` picks the multi-class
    sampler (:meth:`~pacbayes.evidence.label_model.MulticlassLabels.certified`).

    InputError for labels that do not fit K, a ``delta_prime`` outside (0, 1) when certifying, or a budget
    that does not fit ``device``."""
    check_method(method, delta_prime)
    m = int(K.shape[0]) if K.ndim else 0
    likelihood = label_model(classes)
    likelihood.check_labels(labels, m)
    run = EvidenceRun(method, m, classes, jitter, likelihood.prior.format(jitter=jitter))
    runs_ep, runs_certified = method in ("ep", "all"), method in ("certified", "all")
    target = str(resolve_device(device))
    budgets = evidence_budgets(
        m, classes, samples, target, proposal=proposal, with_ep=runs_ep, upper=upper, method=certified_method
    )
    for budget, wanted in zip(budgets, (runs_ep, runs_certified), strict=False):
        if wanted:
            announce(budget.line(), quiet=quiet)
            budget.check_fits(target, "pass a smaller kernel or use a device with more memory (--device)")
    with threads_for(orthant_dimension(m, classes), device):
        if runs_ep:
            deferred = likelihood.ep_options_before_certified() if runs_certified else {}
            run.ep = likelihood.ep(K, labels, jitter=jitter, tol=tol, device=device, quiet=quiet, **deferred)
        if runs_certified:
            run.certified = likelihood.certified(
                K,
                labels,
                delta_prime=delta_prime,
                seed=seed,
                samples=samples,
                jitter=jitter,
                device=device,
                quiet=quiet,
                proposal=proposal,
                ep=run.ep,
                upper=upper,
                method=certified_method,
            )
    return run
