"""Rendering a certify :class:`~pacbayes.certify.Report` for people, and writing it atomically."""

import json
import os
import tempfile


def _format_number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _format_log_evidence(value) -> str:
    return "" if value is None else f"{value:.2f}"


def render_text(report, title: str = "") -> str:
    """One table: errors, every bound (certified or estimate), baselines, deltas, assumptions, seconds."""
    lines = []
    if title:
        lines += [title, ""]
    lines.append(f"  training points m    {report.m}")
    lines.append(f"  confidence           1 - delta = {1 - report.delta:g}  (delta = {report.delta:g})")
    lines.append(f"  train error          {report.train_error:.4f}")
    lines.append(f"  test error           {report.test_error:.4f}   ({report.baselines['holdout_n']} test points)")
    lines.append("")
    lines.append(f"  {'bound':<34} {'value':>8}  {'kind':<10} {'ln P(S)':>10}  about")
    for b in report.bounds:
        kind = "certified" if b.certified else "estimate"
        lines.append(f"  {b.name:<34} {b.value:>8.4f}  {kind:<10} {_format_log_evidence(b.log_evidence):>10}"
                     f"  {b.classifier}")
    lines.append("")
    lines.append("  baselines")
    selected = report.baselines.get("holdout_candidates", 1)
    lines.append(f"    hold-out bound for the model itself (certified)   {report.baselines['holdout_bound']:.4f}"
                 + (f"   (paid for selection among {selected} candidates)" if selected > 1 else ""))
    for key, label in report.baseline_labels.items():
        if label:
            lines.append(f"    {label:<49} {_format_number(report.baselines[key])}")
    lines.append("")
    lines.append("  the hold-out bound is the only statement about MODEL itself; every other bound certifies the")
    lines.append("  classifier named under 'about', and bounds on different classifiers are not interchangeable")
    if "disjoint_from" in report.data.get("test", {}):
        lines.append(f"  test data checked disjoint from {report.data['test']['disjoint_from']}")
    lines.append("")
    lines.append("  what each bound certifies")
    for certifies in dict.fromkeys(b.certifies for b in report.bounds):
        names = ", ".join(b.name for b in report.bounds if b.certifies == certifies)
        lines.append(f"    {names}: {certifies}")
    lines.append("")
    lines.append("  delta ledger (one union bound; all certified numbers hold together)")
    for name, value in _flatten(report.delta_ledger):
        lines.append(f"    {name:<60} {value:.3g}")
    lines.append("")
    lines.append("  assumptions")
    for assumption in dict.fromkeys(a for b in report.bounds for a in b.assumptions):
        lines.append(f"    - {assumption}")
    lines.append("")
    lines.append("  seconds  " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
    return "\n".join(lines)


def _flatten(ledger: dict, prefix: str = ""):
    for name, value in ledger.items():
        if isinstance(value, dict):
            yield from _flatten(value, prefix=f"{prefix}{name}: ")
        else:
            yield prefix + name, value


def write_json_atomically(payload: dict, path: str) -> None:
    """Write ``payload`` to ``path`` so that readers never see a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, allow_nan=False)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
