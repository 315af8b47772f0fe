"""An EP result as plain arrays and back, for a phase cache (:mod:`pacbayes.cache`): no pickle, no code.

What is stored of a binary (:class:`~pacbayes.evidence.ep.EPResult`) or multi-class
(:class:`~pacbayes.evidence.multiclass_ep.MulticlassEPResult`) EP result: its two site arrays, float64,
and ``record``, the canonical JSON (uint8 bytes) of every plain field (ln Z, convergence, sweeps, the
last change, seconds, damping, jitter, the history of ln Z, ...). What is m x m or derived is rebuilt
from K and the sites instead of stored:

- binary: the posterior q(f) at the stored sites, computed as EP's last (float64) sweep computes it,
  so its L^-1 of B, alpha, means and variances are the numbers EP returned, and the certified sampler
  takes EP's factor as it would in a fresh run (:mod:`pacbayes.evidence.ep_cavity`);
- multi-class: the prior K + jitter I and the checked labels, as :func:`multiclass_ep_log_evidence`
  makes them.

A converged EP run (the marginal family allows no other) ends on a float64 sweep, so rebuilding in
float64 is what it did.
"""

import json
from dataclasses import fields

import numpy as np
import torch

from pacbayes.evidence._validate import validate_inputs
from pacbayes.evidence.ep import EPResult, ep_posterior
from pacbayes.evidence.multiclass import validate_multiclass
from pacbayes.evidence.multiclass_ep import MulticlassEPResult
from pacbayes.hashing import canonical_json

SITES = ("site_precision", "site_natural_mean")
RECORD = "record"
"""The array holding the canonical JSON of the result's plain fields."""
_PLAIN = (bool, int, float, str, list)


def json_array(record: dict) -> torch.Tensor:
    """``record`` as a uint8 tensor of its canonical JSON (read back with :func:`json_record`)."""
    return torch.from_numpy(np.frombuffer(canonical_json(record), dtype=np.uint8).copy())


def json_record(array) -> dict:
    """The record :func:`json_array` stored in ``array`` (plain JSON: no pickle, no code)."""
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes())


def ep_arrays(result: EPResult | MulticlassEPResult) -> dict:
    """The arrays :func:`restored_ep` rebuilds ``result`` from: its sites and the record of its plain fields."""
    plain = {f.name: getattr(result, f.name) for f in fields(result)}
    record = {name: value for name, value in plain.items() if isinstance(value, _PLAIN)}
    return {
        **{name: torch.as_tensor(np.asarray(plain[name], dtype=np.float64)) for name in SITES},
        RECORD: json_array(record),
    }


def ep_expected(m: int, classes: int) -> dict:
    """The shapes and dtypes of :func:`ep_arrays` for m points and ``classes`` classes (a phase's ``expected``)."""
    shape = (m,) if classes == 2 else (m, classes - 1)
    return {**{name: (shape, np.float64) for name in SITES}, RECORD: ((None,), np.uint8)}


def restored_ep(
    arrays: dict, K, labels, classes: int, device=None, *, check_definite: bool = True
) -> EPResult | MulticlassEPResult:
    """The EP result of K, ``labels`` (class indices) and ``classes`` whose :func:`ep_arrays` are ``arrays``,
    with what was not stored rebuilt from K and the sites (module docstring), on ``device``.
    ``check_definite`` False: a binary K + jitter I is not Cholesky-checked here (as a fresh binary EP leaves
    it to the certified sandwich that follows, which factorises the same matrix)."""
    record = json_record(arrays[RECORD])
    tau, nu = (np.asarray(arrays[name], dtype=np.float64) for name in SITES)
    if classes == 2:
        prior, _, _ = validate_inputs(K, labels, record["jitter"], device, definite=check_definite)
        sites = [torch.as_tensor(s, device=prior.device) for s in (tau, nu)]
        post = ep_posterior(prior, sites[0], sites[1])
        mean, variance = (torch.as_tensor(t).cpu().numpy() for t in (post.mean, post.variance))
        return EPResult(
            **record,
            site_precision=tau,
            site_natural_mean=nu,
            posterior_mean=mean,
            posterior_variance=variance,
            inverse_factor=post.inverse_factor,
            alpha=post.alpha,
        )
    prior, checked, _, _ = validate_multiclass(K, labels, classes, record["jitter"], device)
    return MulticlassEPResult(**record, labels=checked, site_precision=tau, site_natural_mean=nu, prior=prior)


__all__ = ["RECORD", "SITES", "ep_arrays", "ep_expected", "json_array", "json_record", "restored_ep"]
