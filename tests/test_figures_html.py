"""The report as a picture (``certify --plot``, ``pacbayes plot``) and as an HTML page (``certify --html``,
``pacbayes report``): what the figures say (read from the matplotlib Figure, not its pixels), the page's
numbers against the JSON's (in a headless Chromium where one is installed), and one-line refusals.

Everything runs on test_hostile_input.py's tiny task (24 training and 20 test points of 784 random
features, a linear model that separates them).
"""

import base64
import html.parser
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from test_hostile_input import UNWRITABLE, assert_refused, files, run  # noqa: F401  (registers the fixture used below)

from pacbayes import figures
from pacbayes.html_report import render_html
from pacbayes.monitor import BoundMonitor

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def certified(request, tmp_path_factory):
    """One real ``certify --out --plot --html`` run on the tiny task: (its JSON report, the folder it wrote
    into, which holds the task's model.pt, train.npz and test.npz)."""
    hostile, root = request.getfixturevalue("files"), tmp_path_factory.mktemp("figures")
    for name, copy in (("ts.pt", "model.pt"), ("train.npz", "train.npz"), ("test.npz", "test.npz")):
        shutil.copy(hostile[name], root / copy)
    result = run(
        "certify", root / "model.pt", "--train", root / "train.npz", "--test", root / "test.npz", "--quiet",
        "--out", root / "report.json", "--plot", root / "report.png", "--html", root / "report.html",
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, repr(result.exception))
    return json.loads((root / "report.json").read_text()), root


@pytest.fixture(scope="module")
def history(request, tmp_path_factory):
    """A real BoundMonitor history on the tiny task, exported as JSON (three checkpoints)."""
    root = tmp_path_factory.mktemp("history")
    hostile = request.getfixturevalue("files")
    model, (train, test) = hostile["model"], hostile["data"]
    monitor = BoundMonitor(model, train, test=test, max_checkpoints=4, every=1)
    for _ in range(3):
        monitor.step(model)
    monitor.history_to_json(str(root / "history.json"))
    return root / "history.json"


def png_size(data: bytes) -> tuple:
    """(width, height) of PNG bytes, read from the IHDR chunk (AssertionError if not a PNG)."""
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


def synthetic_report(outputs: int = 1) -> dict:
    """A certify report with one bound on every classifier, one of them an estimate."""
    bounds = [
        {"name": "marginal-ep", "value": 0.31, "certified": False, "classifier": "q-star", "log_evidence": -12.5},
        {"name": "marginal-certified", "value": 0.33, "certified": True, "classifier": "q-star"},
        {"name": "dziugaite-roy", "value": 0.42, "certified": True, "classifier": "stochastic-network"},
        {"name": "subspace", "value": 0.58, "certified": True, "classifier": "compressed-model"},
    ]
    for bound in bounds:
        bound.update(certifies=f"error of {bound['classifier']}", assumptions=["S is iid"], family="f", details={})
    return {
        "train_error": 0.0,
        "test_error": 0.12,
        "m": 24,
        "delta": 0.05,
        "bounds": bounds,
        "baselines": {"holdout_bound": 0.2, "holdout_n": 20},
        "model": {"outputs": outputs},
        "delta_ledger": {"hold-out": 0.025},
    }


def ytick_labels(figure) -> list:
    return [label.get_text() for label in figure.axes[0].get_yticklabels()]


def legend_texts(figure) -> list:
    return [text.get_text() for legend in figure.legends + [a.get_legend() for a in figure.axes if a.get_legend()]
            for text in legend.get_texts()]  # fmt: skip


# ---------------------------------------------------------------- the report figure
def test_certify_plot_writes_a_png_of_the_report(certified):
    report, root = certified
    width, height = png_size((root / "report.png").read_bytes())
    assert 600 <= width <= 2000 and 300 <= height <= 2000
    labels = ytick_labels(figures.report_figure(report))
    assert labels[:3] == [
        "train error (measured)",
        "test error (measured, 20 points)",
        "hold-out bound\non the model itself",
    ]
    assert [label.split("\n")[0] for label in labels[3:]] == [b["name"] for b in report["bounds"]]


def test_report_figure_names_each_classifier_and_tells_certified_from_estimate():
    figure = figures.report_figure(synthetic_report())
    labels = ytick_labels(figure)
    for words in ("Q* (q-star)", "the stochastic network", "the compressed model", "the model itself"):
        assert any(f"on {words}" in label for label in labels), (words, labels)
    bars = figure.axes[0].patches  # one per row: train, test, hold-out, then the bounds in order
    assert len(bars) == 7
    estimate, certified = bars[3], bars[4]
    assert estimate.get_hatch() == figures.ESTIMATE_HATCH and estimate.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert not certified.get_hatch() and certified.get_facecolor()[:3] != (1.0, 1.0, 1.0)
    assert [bar.get_width() for bar in bars[2:]] == [0.2, 0.31, 0.33, 0.42, 0.58]
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "0.31  estimate" in texts and "0.33  certified" in texts
    legend = legend_texts(figure)
    assert any("certified" in t and "filled" in t for t in legend) and any("estimate" in t for t in legend)


@pytest.mark.parametrize("outputs, chance", [(1, 0.5), (10, 0.9)])
def test_report_figure_marks_chance_level(outputs, chance):
    figure = figures.report_figure(synthetic_report(outputs))
    lines = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert [tuple(line.get_xdata()) for line in lines] == [(chance, chance)]
    assert f"chance level ({chance:g})" in legend_texts(figure)


def test_report_figure_shows_a_bound_without_a_finite_value_as_text():
    record = synthetic_report()
    record["bounds"][2]["value"] = None  # what the JSON holds for an infinite bound
    figure = figures.report_figure(record)
    assert "no finite value" in [t.get_text() for t in figure.axes[0].texts]
    assert len(figure.axes[0].patches) == 6


# ---------------------------------------------------------------- the history figure
def test_plot_draws_a_monitor_history(history, tmp_path):
    result = run("plot", history, "-o", tmp_path / "h.png", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"figure": str(tmp_path / "h.png"), "kind": figures.HISTORY}
    png_size((tmp_path / "h.png").read_bytes())
    records = json.loads(history.read_text())
    figure = figures.history_figure(records)
    labels = [line.get_label() for line in figure.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels[:2] == ["train error (measured)", "test error (measured)"]
    assert "marginal-ep on Q* (q-star)" in labels and "holdout on the model itself" in labels
    holdout = next(line for line in figure.axes[0].get_lines() if line.get_label() == "holdout on the model itself")
    assert list(holdout.get_xdata()) == [r["step"] for r in records]
    assert list(holdout.get_ydata()) == [
        next(b["value"] for b in r["bounds"] if b["name"] == "holdout") for r in records
    ]


def test_history_figure_leaves_out_a_bound_where_it_does_not_apply():
    records = [
        {"step": step, "train_error": error, "test_error": 0.2, "applies": {"marginal-ep": error == 0.0},
         "bounds": [{"name": "marginal-ep", "value": 0.3, "certified": False, "classifier": "q-star"}]}
        for step, error in ((0, 0.1), (5, 0.0))
    ]  # fmt: skip
    figure = figures.history_figure(records)
    line = next(line for line in figure.axes[0].get_lines() if line.get_label() == "marginal-ep on Q* (q-star)")
    assert np.isnan(line.get_ydata()[0]) and line.get_ydata()[1] == 0.3


def test_plot_tells_a_report_from_a_history_by_its_keys(certified, history):
    report, _ = certified
    assert figures.kind_of(report, "r") == figures.REPORT
    assert figures.kind_of(json.loads(history.read_text()), "h") == figures.HISTORY
    assert figures.kind_of({"history": json.loads(history.read_text())}, "h") == figures.HISTORY


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "content, words",
    [
        ('{"a": 1}', ("neither a certify report", "certify --out")),
        ("[1, 2]", ("neither a certify report",)),
        ("[]", ("neither a certify report",)),
        ("not json", ("not a JSON",)),
    ],
    ids=["object", "list", "empty-list", "not-json"],
)
def test_plot_and_report_refuse_what_is_not_a_report(tmp_path, content, words):
    (tmp_path / "in.json").write_text(content)
    for command, name in (("plot", "out.png"), ("report", "out.html")):
        result = run(command, tmp_path / "in.json", "-o", tmp_path / name)
        assert_refused(result, *(words if command == "plot" else words[:1]))
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("command, name", [("plot", "out.png"), ("report", "out.html")])
def test_plot_and_report_refuse_bad_paths(certified, tmp_path, command, name):
    _, root = certified
    assert_refused(run(command, tmp_path, "-o", tmp_path / name), "is a directory")
    assert_refused(run(command, tmp_path / "missing.json", "-o", tmp_path / name), "no such")
    assert_refused(run(command, root / "report.json", "-o", UNWRITABLE), "-o/--output")
    assert_refused(run(command, root / "report.json", "-o", tmp_path), "existing directory")
    assert_refused(run(command, root / "report.json", "-o", root / "report.json"), "is the", "destroy")


def test_report_refuses_a_history(history, tmp_path):
    assert_refused(run("report", history, "-o", tmp_path / "h.html"), "monitor history", "pacbayes plot")


def test_certify_refuses_unwritable_or_clashing_views_before_any_work(certified, monkeypatch):
    _, root = certified

    def fail(*args, **kwargs):
        raise AssertionError("certify ran")

    monkeypatch.setattr("pacbayes.certification.certify", fail)
    base = ["certify", root / "model.pt", "--train", root / "train.npz", "--test", root / "test.npz"]
    assert_refused(run(*base, "--plot", UNWRITABLE), "--plot")
    assert_refused(run(*base, "--html", root), "--html", "existing directory")
    assert_refused(run(*base, "--html", root / "model.pt"), "--html", "MODEL file")
    assert_refused(run(*base, "--out", root / "x.json", "--plot", root / "x.json"), "--plot", "--out file")
    assert_refused(run(*base, "--plot", root / "v", "--html", root / "v"), "--html", "--plot file")


def test_without_matplotlib_plot_names_the_extra_and_the_page_says_so(certified, tmp_path, monkeypatch):
    report, root = certified
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert_refused(run("plot", root / "report.json", "-o", tmp_path / "p.png"), "pip install pacbayes[plot]")
    base = ["certify", root / "model.pt", "--train", root / "train.npz", "--test", root / "test.npz"]
    assert_refused(run(*base, "--plot", tmp_path / "p.png"), "pip install pacbayes[plot]")
    page = render_html(report)
    assert "pip install pacbayes[plot]" in page and "<img" not in page


# ---------------------------------------------------------------- the HTML page
class _Cells(html.parser.HTMLParser):
    """Every element with a ``data-json`` pointer: (pointer, data-value, title, shown text); table ids."""

    def __init__(self):
        super().__init__()
        self.cells, self.ids, self.images, self._open = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "data-json" in attrs:
            self._open = [attrs["data-json"], attrs["data-value"], attrs["title"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[3] += data

    def handle_endtag(self, tag):
        if self._open is not None and tag == "td":
            self.cells.append(tuple(self._open))
            self._open = None


def resolve(record, pointer: str):
    """The value at a JSON Pointer (RFC 6901) in ``record``."""
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        record = record[int(part)] if isinstance(record, list) else record[part]
    return record


def assert_numbers_match(page: str, report: dict) -> _Cells:
    """Every number on the page equals the JSON's: exactly in data-value and title, to 4 digits as shown."""
    cells = _Cells()
    cells.feed(page)
    pointers = [cell[0] for cell in cells.cells]
    expected = ["/baselines/holdout_bound", "/train_error", "/test_error", "/delta", "/m"]
    expected += [f"/bounds/{i}/value" for i in range(len(report["bounds"]))]
    assert set(expected) <= set(pointers), pointers
    for pointer, exact, title, shown in cells.cells:
        value = resolve(report, pointer)
        assert json.loads(exact) == value and json.loads(title) == value, pointer
        assert shown == figures.significant(value), (pointer, shown, value)
    return cells


def test_certify_html_is_one_self_contained_page_with_the_json_numbers(certified):
    report, root = certified
    page = (root / "report.html").read_text()
    cells = assert_numbers_match(page, report)
    assert {"summary", "bounds", "ledger", "figure"} <= set(cells.ids)
    assert len(cells.images) == 1 and cells.images[0].startswith("data:image/png;base64,")
    png_size(base64.b64decode(cells.images[0].split(",", 1)[1]))
    for external in ("<script", "<link", 'src="http', "url(", "@import"):
        assert external not in page
    for section in ("What each bound certifies", "Delta ledger", "Assumptions", "Provenance", "command line"):
        assert section in page
    assert report["provenance"]["model_sha256"] in page and report["provenance"]["data_sha256"]["train"] in page


def test_report_command_writes_the_same_page_as_certify_html(certified, tmp_path):
    _, root = certified
    result = run("report", root / "report.json", "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text() == (root / "report.html").read_text()


def test_html_escapes_every_text():
    record = synthetic_report()
    record["model_path"] = "<script>alert(1)</script>.pt"
    record["bounds"][0]["name"] = 'a "quoted" <b>name</b>'
    record["bounds"][0]["assumptions"] = ["x < y & z"]
    record["not_applying"] = {"marginal": "training error 0.003 > 0 <realisable only>"}
    page = render_html(record)
    assert "<script>" not in page and "<b>" not in page and "<realisable" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pt" in page and "x &lt; y &amp; z" in page
    assert "marginal does not apply to this model: training error 0.003 &gt; 0 &lt;realisable only&gt;" in page


def chromium():
    """The path of a Chromium binary, or skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); the page is checked in a browser there")
    return found


def browse(browser, tmp_path, *flags):
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    done = subprocess.run(args + list(flags), capture_output=True, text=True, timeout=300)  # a hang guard only
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_html_renders_in_a_headless_browser_with_the_json_numbers(certified, tmp_path):
    browser = chromium()
    report, root = certified
    url = (root / "report.html").as_uri()
    dom = browse(browser, tmp_path, "--dump-dom", url)
    cells = assert_numbers_match(dom, report)
    assert "bounds" in cells.ids and len(cells.images) == 1
    browse(browser, tmp_path, "--window-size=1200,1600", f"--screenshot={tmp_path / 'shot.png'}", url)
    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "shot.png")
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels[..., :3].std() > 0.05  # not blank: text, table and figure on white


def _first_bound(record):
    return record["bounds"][0]


@pytest.mark.parametrize(
    "forge, words",
    [
        (lambda r: r.update(bounds=[1]), ["bounds[0] must be an object"]),
        (lambda r: _first_bound(r).update(value="0.3"), ["bounds[0].value must be a number"]),
        (lambda r: _first_bound(r).update(classifier=5), ["bounds[0].classifier must be a string"]),
        (lambda r: _first_bound(r).update(assumptions=[{}]), ["assumptions must be a string"]),
        (lambda r: r.update(baselines=[1]), ["baselines must be an object"]),
        (lambda r: r.update(data={"train": [1]}), ["data.train must be an object"]),
        (lambda r: r.update(delta="a"), ["delta must be a number"]),
    ],
)
@pytest.mark.parametrize("command", ["plot", "report"])
def test_a_report_of_the_wrong_shape_is_one_line(certified, tmp_path, forge, words, command):
    record, _ = certified
    forged = json.loads(json.dumps(record))
    forge(forged)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    assert_refused(run(command, path, "-o", tmp_path / "out.file"), *words)


@pytest.mark.parametrize("command", ["plot", "report"])
def test_an_edited_certified_number_is_not_drawn(certified, tmp_path, command):
    """A page or a picture never shows a report as certified that verify would reject."""
    record, _ = certified
    forged = json.loads(json.dumps(record))
    row = next(b for b in forged["bounds"] if b["certified"])
    row["value"] = 0.001
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    assert_refused(run(command, path, "-o", tmp_path / "out.file"), "does not verify")
    assert not (tmp_path / "out.file").exists()
