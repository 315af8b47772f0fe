"""A certify report as one self-contained HTML page, for sharing results.

The page holds the bounds table, the figure of :mod:`pacbayes.figures` (a PNG embedded as a data URI),
what each bound certifies, the delta ledger, the assumptions, the data and the provenance. It loads
nothing from anywhere (inline CSS, no scripts, no links), and every text from the report is escaped.
Every number is shown to 4 significant digits and carries its exact JSON value in ``data-value`` and
``title``, with its place in the report in ``data-json`` (a JSON Pointer, e.g. ``/bounds/0/value``). Torch-free; without
matplotlib the page says where the picture would be and how to get it.
"""

import base64
import html
import json
import shlex

from pacbayes.figures import INSTALL_HINT, classifier_words, matplotlib_available, png_bytes, report_figure, significant

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.certified { color: #0a6b0a; font-weight: 600; } .estimate { color: #8a5a00; font-style: italic; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; word-break: break-all; white-space: pre-wrap; }
img { max-width: 100%; border: 1px solid #ddd; } .note { color: #555; }
"""


def _text(value) -> str:
    return html.escape(str(value))


def _child(pointer: str, name) -> str:
    """The JSON Pointer (RFC 6901) of member ``name`` under ``pointer``."""
    return pointer + "/" + str(name).replace("~", "~0").replace("/", "~1")


def _number(value, key: str, tag: str = "td") -> str:
    """A cell showing ``value`` to 4 significant digits, its exact JSON value in data-value and title."""
    exact = _text(json.dumps(value))
    return (
        f'<{tag} class="num" data-json="{_text(key)}" data-value="{exact}" title="{exact}">{significant(value)}</{tag}>'
    )


def _value(value, key: str) -> str:
    """A cell for any JSON value: numbers as :func:`_number`, other values as text or JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value, key)
    if isinstance(value, (dict, list)):
        return f"<td><code>{_text(json.dumps(value))}</code></td>"
    return f"<td>{'none' if value is None else _text(value)}</td>"


def _key_table(mapping: dict, key: str) -> str:
    """A two-column table of ``mapping`` (its place in the report: ``key``)."""
    rows = "".join(
        f"<tr><th>{_text(name)}</th>{_value(item, _child(key, name))}</tr>" for name, item in mapping.items()
    )
    return f"<table>{rows}</table>"


def _kind(certified: bool) -> str:
    return '<td class="certified">certified</td>' if certified else '<td class="estimate">estimate</td>'


def _bounds_table(record: dict) -> str:
    """Every bound (the hold-out bound first): value, certified or estimate, classifier, ln P(S), family."""
    head = "<tr><th>bound</th><th>value</th><th>kind</th><th>classifier</th><th>ln P(S)</th><th>family</th></tr>"
    baselines = record.get("baselines") or {}
    rows = []
    if "holdout_bound" in baselines:
        rows.append(
            "<tr><td>hold-out bound</td>"
            + _number(baselines["holdout_bound"], "/baselines/holdout_bound")
            + _kind(True)
            + f"<td>{_text(classifier_words('model'))}</td><td></td><td>hold-out</td></tr>"
        )
    for index, bound in enumerate(record["bounds"]):
        evidence = bound.get("log_evidence")
        rows.append(
            f"<tr><td>{_text(bound.get('name', ''))}</td>"
            + _number(bound.get("value"), f"/bounds/{index}/value")
            + _kind(bool(bound.get("certified")))
            + f"<td>{_text(classifier_words(bound.get('classifier', '')))}</td>"
            + ("<td></td>" if evidence is None else _number(evidence, f"/bounds/{index}/log_evidence"))
            + f"<td>{_text(bound.get('family', ''))}</td></tr>"
        )
    return f'<table id="bounds">{head}{"".join(rows)}</table>' + _bound_notes(record)


def _bound_notes(record: dict) -> str:
    """Families that do not apply, why a bound is vacuous or has no clean-label version, as the text
    report says it."""
    notes = [
        f"{family} does not apply to this model: {why}" for family, why in (record.get("not_applying") or {}).items()
    ]
    for bound in record["bounds"]:
        details = bound.get("details") or {}
        if details.get("why_vacuous"):
            notes.append(f"{bound.get('name')} is vacuous (no better than chance): {details['why_vacuous']}")
        if details.get("no_clean_labels"):
            notes.append(f"{bound.get('name')} has no clean-label version: {details['no_clean_labels']}")
    return _list(notes)


def _list(items) -> str:
    return f"<ul>{''.join(f'<li>{_text(item)}</li>' for item in items)}</ul>" if items else ""


def _summary(record: dict) -> str:
    baselines = record.get("baselines") or {}
    rows = [
        ("training points m", _value(record.get("m"), "/m")),
        ("failure probability delta", _value(record.get("delta"), "/delta")),
        ("train error (measured)", _value(record.get("train_error"), "/train_error")),
        (
            f"test error (measured on {baselines.get('holdout_n', '?')} points)",
            _value(record.get("test_error"), "/test_error"),
        ),
        ("best certified bound", _value(record.get("best_certified_bound"), "/best_certified_bound")),
        (
            "its name and classifier",
            f"<td>{_text(record.get('best_certified_bound_name'))} on "
            f"{_text(classifier_words(record.get('best_certified_bound_classifier') or ''))}</td>",
        ),
    ]
    return f'<table id="summary">{"".join(f"<tr><th>{_text(n)}</th>{cell}</tr>" for n, cell in rows)}</table>'


def _picture(record: dict, png) -> str:
    """The report figure embedded as a data URI (``png``: its bytes when already drawn, else drawn here)."""
    if png is None and not matplotlib_available():
        return (
            f'<p class="note">The picture needs matplotlib: {_text(INSTALL_HINT)}, then run pacbayes report again.</p>'
        )
    data = base64.b64encode(png_bytes(report_figure(record)) if png is None else png).decode("ascii")
    alt = "each bound beside the measured train and test error and the hold-out bound"
    return f'<img id="figure" alt="{alt}" src="data:image/png;base64,{data}">'


def _certifies(record: dict) -> str:
    bounds = record["bounds"]
    lines = [
        f"{', '.join(b.get('name', '') for b in bounds if b.get('certifies') == certifies)}: {certifies}"
        for certifies in dict.fromkeys(b.get("certifies") for b in bounds)
    ]
    return _list(["hold-out bound: 0-1 error of the model itself (exact binomial tail on the test set)", *lines]) + (
        '<p class="note">The hold-out bound is the only statement about the model itself; every other bound '
        "certifies the classifier named, and bounds on different classifiers are not interchangeable.</p>"
    )


def _ledger(ledger: dict, key: str = "/delta_ledger", prefix: str = "") -> list:
    """Rows of the delta ledger, nested entries named by their path."""
    rows = []
    for name, value in ledger.items():
        if isinstance(value, dict):
            rows += _ledger(value, _child(key, name), f"{prefix}{name}: ")
        else:
            rows.append(f"<tr><th>{_text(prefix + name)}</th>{_value(value, _child(key, name))}</tr>")
    return rows


def _provenance(record: dict) -> str:
    provenance = dict(record.get("provenance") or {})
    command = provenance.pop("command_line", None)
    options = provenance.pop("options", None)
    parts = []
    if isinstance(command, list):
        parts.append(f"<p>command line: <code>{_text(shlex.join(str(word) for word in command))}</code></p>")
    parts.append(_key_table(provenance, "/provenance"))
    if options is not None:
        parts.append(
            f"<details><summary>certify options</summary><pre>{_text(json.dumps(options, indent=2))}</pre></details>"
        )
    return "".join(parts)


def render_html(record: dict, png=None) -> str:
    """The page for a certify report ``record`` (the JSON object ``certify --out`` writes); ``png``: the
    report figure's PNG bytes when the caller has drawn it already."""
    title = f"pacbayes certificate for {record.get('model_path') or 'a model'}"
    assumptions = dict.fromkeys(a for b in record["bounds"] for a in b.get("assumptions", []))
    data = record.get("data") or {}
    sections = [
        f"<h1>{_text(title)}</h1>",
        _summary(record),
        "<h2>Bounds</h2>",
        _bounds_table(record),
        "<h2>Picture</h2>",
        _picture(record, png),
        "<h2>What each bound certifies</h2>",
        _certifies(record),
        "<h2>Baselines</h2>",
        _key_table(record.get("baselines") or {}, "/baselines"),
        "<h2>Delta ledger</h2>",
        '<p class="note">One union bound: all certified numbers hold together.</p>',
        f'<table id="ledger">{"".join(_ledger(record.get("delta_ledger") or {}))}</table>',
        "<h2>Assumptions</h2>",
        _list(assumptions),
        "<h2>Data</h2>",
        "".join(f"<h3>{_text(split)}</h3>{_key_table(info, _child('/data', split))}" for split, info in data.items()),
        "<h2>Provenance</h2>",
        _provenance(record),
        "<h2>Seconds</h2>",
        _key_table(record.get("seconds") or {}, "/seconds"),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_text(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_html(record: dict, path: str, png=None) -> None:
    """Write the page for ``record`` to ``path``, atomically (built before any file is made)."""
    from pacbayes.report import write_atomically

    page = render_html(record, png)
    write_atomically(path, lambda stream: stream.write(page))
