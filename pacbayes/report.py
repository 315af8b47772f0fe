"""Rendering a certify :class:`~pacbayes.certification.Report` for people, and writing it atomically."""

import json
import math
import os
import stat
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
        lines.append(
            f"  {b.name:<34} {b.value:>8.4f}  {kind:<10} {_format_log_evidence(b.log_evidence):>10}  {b.classifier}"
        )
    for family, reason in report.not_applying.items():
        lines.append(f"    {family} does not apply to this model: {reason}")
    for b in report.bounds:
        if b.details.get("why_vacuous"):
            lines.append(f"    {b.name} is vacuous (no better than chance): {b.details['why_vacuous']}")
        if b.details.get("no_clean_labels"):
            lines.append(f"    {b.name} has no clean-label version: {b.details['no_clean_labels']}")
    lines.append("")
    lines.append("  baselines")
    selected = report.baselines.get("holdout_candidates", 1)
    lines.append(
        f"    hold-out bound for the model itself (certified)   {report.baselines['holdout_bound']:.4f}"
        + (f"   (paid for selection among {selected} candidates)" if selected > 1 else "")
    )
    for key, label in report.baseline_labels.items():
        if label:
            lines.append(f"    {label:<49} {_format_number(report.baselines[key])}")
    lines.append("")
    lines.append("  the hold-out bound is the only statement about MODEL itself; every other bound certifies the")
    lines.append("  classifier named under 'about', and bounds on different classifiers are not interchangeable")
    for note in report.notes:
        lines.append(f"  note: {note}")
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


def json_safe(payload, note: bool = True):
    """``payload`` with every non-finite float (inf, -inf, NaN: JSON has none of them) replaced by None.

    With ``note`` (and a dict payload) the replaced keys are listed, with what they held, under
    ``payload["notes"]["non_finite"]`` (e.g. ``{"bounds[0].value": "inf"}``), so a reader can tell a
    null that was infinite from one that was never computed. The input is not modified.
    """
    replaced = {}

    def clean(value, where):
        if isinstance(value, float) and not math.isfinite(value):
            replaced[where or "(value)"] = str(value)
            return None
        if isinstance(value, dict):
            return {key: clean(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return value

    result = clean(payload, "")
    if note and replaced and isinstance(result, dict):
        notes = result.get("notes")
        if isinstance(notes, dict):
            result["notes"] = {**notes, "non_finite": {**notes.get("non_finite", {}), **replaced}}
        elif isinstance(notes, list):
            result["notes"] = notes + [{"non_finite": replaced}]
        else:
            result["notes"] = {"non_finite": replaced} if notes is None else {"note": notes, "non_finite": replaced}
    return result


def _new_file_mode() -> int:
    """The mode open() gives a new file under the current umask (0o666 & ~umask)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path: str, write, binary: bool = False) -> None:
    """Call ``write(stream)`` on a temporary file next to ``path``, then rename it onto ``path``.

    Readers never see a half-written file; on any failure the temporary file is removed and an
    existing ``path`` is left as it was. The file gets the mode of the file it replaces (or, for a
    new file, the umask default), not mkstemp's 0600.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.isfile(path) else _new_file_mode()
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb" if binary else "w") as stream:
            write(stream)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise


def write_json_atomically(payload: dict, path: str) -> None:
    """Write ``payload`` to ``path`` as JSON (see :func:`write_atomically`; non-finite numbers become
    null, listed under ``notes``, see :func:`json_safe`). The JSON is built before any file is made."""
    text = json.dumps(json_safe(payload), indent=2, allow_nan=False)
    write_atomically(path, lambda stream: stream.write(text))
