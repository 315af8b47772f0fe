"""Pictures of a certify report and of a BoundMonitor history, as PNG files.

Both figures read the JSON the package writes (``pacbayes certify --out``; a monitor history, one record
per checkpoint as :meth:`pacbayes.monitor.MonitorResult.to_dict` gives it), so a picture can be drawn
later from the file alone. matplotlib is an optional extra (``pip install pacbayes[plot]``): it is
imported inside the functions that draw, on the Agg canvas (no display needed), and this module loads
without it. Torch-free.
"""

import io
import math

from pacbayes.errors import InputError, PacBayesError

INSTALL_HINT = "pip install pacbayes[plot]"
REPORT = "certify report"
HISTORY = "monitor history"

CLASSIFIER_WORDS = {
    "q-star": "Q* (q-star)",
    "stochastic-network": "the stochastic network",
    "compressed-model": "the compressed model",
    "model": "the model itself",
}
MODEL_COLOUR = "#2ca02c"
CLASSIFIER_COLOURS = {
    "q-star": "#1f77b4",
    "stochastic-network": "#ff7f0e",
    "compressed-model": "#9467bd",
    "model": MODEL_COLOUR,
}
MEASURED_COLOUR = "#7f7f7f"
CHANCE_COLOUR = "#d62728"
ESTIMATE_HATCH = "////"


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib() -> None:
    """PacBayesError naming the extra to install unless matplotlib can be imported."""
    if not matplotlib_available():
        raise PacBayesError(f"matplotlib is not installed, and figures need it; run {INSTALL_HINT}")


def classifier_words(classifier: str) -> str:
    """The classifier a bound certifies, in words (``"q-star"`` -> ``"Q* (q-star)"``)."""
    return CLASSIFIER_WORDS.get(classifier, (classifier or "an unnamed classifier").replace("-", " "))


def significant(value) -> str:
    """A number as figures and pages show it: 4 significant digits, integers whole (None: ``"none"``)."""
    if value is None:
        return "none"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


# ---------------------------------------------------------------- what a JSON file holds
def kind_of(payload, where: str) -> str:
    """REPORT or HISTORY by the keys ``payload`` has, once every field the figure and the page read has
    its type; InputError naming ``where`` for anything else."""
    if isinstance(payload, dict) and {"bounds", "baselines", "train_error"} <= payload.keys():
        _check_fields(payload, _REPORT_FIELDS, where)
        _check_fields(payload.get("baselines") or {}, {"holdout_bound": _NUMBER}, where, "baselines.")
        for split, info in (payload.get("data") or {}).items():
            _check_fields({split: info}, {split: "an object"}, where, "data.")
        _check_rows(payload["bounds"], where, "bounds")
        return REPORT
    records = history_records(payload)
    if records is not None:
        for index, record in enumerate(records):
            _check_fields(record, _HISTORY_FIELDS, where, f"history[{index}].")
            _check_rows(record["bounds"], where, f"history[{index}].bounds")
        return HISTORY
    raise InputError(
        f"{where} is neither a certify report (an object with bounds, baselines, train_error) nor a monitor "
        "history (a list of records with step and bounds); give the JSON written by certify --out or the "
        "monitor's history export"
    )


_NUMBER = "a number"
_KINDS = {
    _NUMBER: lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
    "a string": lambda v: v is None or isinstance(v, str),
    "true or false": lambda v: isinstance(v, bool),
    "an object": lambda v: v is None or isinstance(v, dict),
    "a list": lambda v: isinstance(v, list),
}
_REPORT_FIELDS = {
    **dict.fromkeys(("train_error", "test_error", "m", "delta", "best_certified_bound"), _NUMBER),
    **dict.fromkeys(("best_certified_bound_name", "best_certified_bound_classifier", "model_path"), "a string"),
    **dict.fromkeys(
        ("baselines", "data", "delta_ledger", "provenance", "seconds", "model", "not_applying"), "an object"
    ),
}
_HISTORY_FIELDS = {"step": _NUMBER, "train_error": _NUMBER, "test_error": _NUMBER, "applies": "an object"}
_ROW_FIELDS = {
    "value": _NUMBER,
    "log_evidence": _NUMBER,
    "certified": "true or false",
    "details": "an object",
    "assumptions": "a list",
    **dict.fromkeys(("name", "classifier", "family", "certifies"), "a string"),
}


def _check_fields(record: dict, fields: dict, where: str, prefix: str = "") -> None:
    """InputError naming ``where`` and the key when a field of ``record`` present is not of its kind."""
    for key, kind in fields.items():
        if key in record and not _KINDS[kind](record[key]):
            raise InputError(
                f"{where}: {prefix}{key} must be {kind}, got {record[key]!r:.60}; give the JSON pacbayes wrote"
            )


def _check_rows(rows: list, where: str, place: str) -> None:
    """InputError unless every bound row is an object whose fields have their kinds."""
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{where}: {place}[{index}] must be an object, got {row!r:.60}")
        _check_fields(row, _ROW_FIELDS, where, f"{place}[{index}].")
        for text in row.get("assumptions") or []:
            _check_fields({"assumptions": text}, {"assumptions": "a string"}, where, f"{place}[{index}].")


def history_records(payload):
    """The per-checkpoint records of a monitor history (a list, or an object holding it under
    ``history``), or None when ``payload`` is not one."""
    records = payload.get("history") if isinstance(payload, dict) else payload
    if not isinstance(records, list) or not records:
        return None
    if all(isinstance(r, dict) and "step" in r and isinstance(r.get("bounds"), list) for r in records):
        return records
    return None


def chance_level(record: dict):
    """The error of guessing uniformly: 1/2 for one logit, 1 - 1/K for K classes (None if unrecorded)."""
    outputs = (record.get("model") or {}).get("outputs")
    if not isinstance(outputs, int) or outputs < 1:
        return None
    return 1.0 - 1.0 / (2 if outputs == 1 else outputs)


# ---------------------------------------------------------------- drawing
def _new_figure(width: float, height: float):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _report_rows(record: dict) -> list:
    """(label, value, style, colour) per bar, top to bottom: measured errors, the hold-out bound, every bound."""
    baselines = record.get("baselines") or {}
    rows = [
        ("train error (measured)", record.get("train_error"), "measured", MEASURED_COLOUR),
        (
            f"test error (measured, {baselines.get('holdout_n', '?')} points)",
            record.get("test_error"),
            "measured",
            MEASURED_COLOUR,
        ),
    ]
    if "holdout_bound" in baselines:
        rows.append(("hold-out bound\non the model itself", baselines["holdout_bound"], "certified", MODEL_COLOUR))
    for bound in record["bounds"]:
        classifier = bound.get("classifier", "")
        rows.append(
            (
                f"{bound.get('name', '?')}\non {classifier_words(classifier)}",
                bound.get("value"),
                "certified" if bound.get("certified") else "estimate",
                CLASSIFIER_COLOURS.get(classifier, "#17becf"),
            )
        )
    return rows


def _bar_style(style: str, colour: str) -> dict:
    if style == "estimate":
        return {"facecolor": "white", "edgecolor": colour, "hatch": ESTIMATE_HATCH, "linewidth": 1.5}
    return {"facecolor": colour, "edgecolor": colour, "linewidth": 1.5}


def _style_legend(axes, chance) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(**_bar_style("certified", "#444444"), label="certified bound (filled)"),
        Patch(**_bar_style("estimate", "#444444"), label="estimate, not certified (hollow, hatched)"),
        Patch(**_bar_style("measured", MEASURED_COLOUR), label="measured error"),
    ]
    if chance is not None:
        handles.append(Line2D([], [], color=CHANCE_COLOUR, linestyle="--", label=f"chance level ({chance:.3g})"))
    axes.figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)


def report_figure(record: dict):
    """One figure of a certify report: every bound as a horizontal bar beside the measured train and test
    errors and the hold-out bound, certified bounds filled and estimates hollow and hatched, each labelled
    with the classifier it certifies; chance level dashed."""
    rows = _report_rows(record)
    figure = _new_figure(9.0, 1.6 + 0.62 * len(rows))
    axes = figure.add_subplot()
    for position, (_, value, style, colour) in enumerate(rows):
        if value is None or not math.isfinite(value):
            axes.text(0.01, position, "no finite value", va="center", fontsize=8)
            continue
        axes.barh(position, min(value, 1.0), height=0.6, **_bar_style(style, colour))
        tag = "" if style == "measured" else f"  {style}"
        axes.text(min(value, 1.0) + 0.01, position, significant(value) + tag, va="center", fontsize=8)
    chance = chance_level(record)
    if chance is not None:
        axes.axvline(chance, color=CHANCE_COLOUR, linestyle="--", linewidth=1.2)
    axes.set_yticks(range(len(rows)), [row[0] for row in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.18)
    axes.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.set_xlabel("0-1 error (bounds: upper bounds on the true error of the classifier named)")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(
        f"pacbayes certificate: m = {significant(record.get('m'))}, delta = {significant(record.get('delta'))}",
        fontsize=10,
    )
    _style_legend(axes, chance)
    return figure


def _series(records: list) -> tuple:
    """(steps, train errors, test errors, {bound name: (values, certified flags, classifier)}); a bound that
    does not apply at a checkpoint (``applies`` false) or is missing there has value None."""
    steps = [r["step"] for r in records]
    bounds: dict = {}
    for index, record in enumerate(records):
        applies = record.get("applies") or {}
        for bound in record["bounds"]:
            values, flags, _ = bounds.setdefault(
                bound.get("name", "?"), ([None] * len(records), [False] * len(records), bound.get("classifier", ""))
            )
            values[index] = bound.get("value") if applies.get(bound.get("name"), True) else None
            flags[index] = bool(bound.get("certified"))
    return steps, [r.get("train_error") for r in records], [r.get("test_error") for r in records], bounds


def _nan(values: list) -> list:
    return [math.nan if v is None else v for v in values]


def history_figure(records: list):
    """One figure of a monitor history: train and test error and every bound per checkpoint (filled
    markers certified, hollow ones estimates; a bound is left out where it does not apply)."""
    require_matplotlib()
    from matplotlib.lines import Line2D

    steps, train, test, bounds = _series(records)
    figure = _new_figure(9.0, 5.0)
    axes = figure.add_subplot()
    axes.plot(steps, _nan(train), color=MEASURED_COLOUR, marker=".", label="train error (measured)")
    axes.plot(steps, _nan(test), color=MEASURED_COLOUR, linestyle=":", marker=".", label="test error (measured)")
    for index, (name, (values, flags, classifier)) in enumerate(bounds.items()):
        colour = f"C{index % 10}"
        axes.plot(steps, _nan(values), color=colour, label=f"{name} on {classifier_words(classifier)}")
        for certified in (True, False):
            shown = [
                v if (v is not None and flag == certified) else math.nan for v, flag in zip(values, flags, strict=False)
            ]
            axes.plot(
                steps,
                shown,
                linestyle="none",
                marker="o",
                color=colour,
                markerfacecolor=colour if certified else "white",
            )
    handles, _ = axes.get_legend_handles_labels()
    handles += [
        Line2D([], [], linestyle="none", marker="o", color="#444444", label="filled marker: certified"),
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            color="#444444",
            markerfacecolor="white",
            label="hollow marker: estimate",
        ),
    ]
    axes.legend(handles=handles, fontsize=8, loc="upper right")
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("training step")
    axes.set_ylabel("0-1 error")
    axes.grid(alpha=0.3)
    axes.set_title(f"pacbayes monitor: {len(records)} checkpoints", fontsize=10)
    return figure


def figure_for(payload, where: str):
    """(kind, figure) for a certify report or a monitor history read from ``where``."""
    kind = kind_of(payload, where)
    if kind == REPORT:
        return kind, report_figure(payload)
    return kind, history_figure(history_records(payload))


def png_bytes(figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def save_png(figure, path: str) -> None:
    """Write the figure to ``path`` as a PNG, atomically."""
    write_png(png_bytes(figure), path)


def write_png(data: bytes, path: str) -> None:
    """Write PNG bytes to ``path``, atomically (see :func:`pacbayes.report.write_atomically`)."""
    from pacbayes.report import write_atomically

    write_atomically(path, lambda stream: stream.write(data), binary=True)
