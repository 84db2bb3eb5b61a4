"""What a user sees: the HTML report of the demo job and the schedule SVG,
parsed (html.parser for the page, xml.etree for every inline SVG) and checked
for what a person needs to read them at a glance."""

import re
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

SVG = "{http://www.w3.org/2000/svg}"


class Page(HTMLParser):
    """The page's headings (with ids), paragraphs, list items and inline SVGs."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.text = text
        self.headings = []  # (tag, id, text)
        self.paragraphs = []
        self.items = []
        self.svgs = []  # ET elements, in page order
        self._open = None
        self._buffer = ""
        self._svg_start = None
        self._svg_depth = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            if self._svg_depth == 0:
                self._svg_start = self._offset()
            self._svg_depth += 1
        elif self._svg_depth == 0 and tag in ("h1", "h2", "p", "li"):
            self._open = (tag, dict(attrs).get("id"))
            self._buffer = ""

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg_depth -= 1
            if self._svg_depth == 0:
                end = self.text.index("</svg>", self._offset()) + len("</svg>")
                self.svgs.append(ET.fromstring(self.text[self._svg_start : end]))
        elif self._open and tag == self._open[0]:
            tag_, id_ = self._open
            if tag_ in ("h1", "h2"):
                self.headings.append((tag_, id_, self._buffer.strip()))
            elif tag_ == "p":
                self.paragraphs.append(self._buffer.strip())
            else:
                self.items.append(self._buffer.strip())
            self._open = None

    def handle_data(self, data):
        if self._open:
            self._buffer += data

    def _offset(self):
        line, col = self.getpos()
        lines = self.text.split("\n")
        return sum(len(s) + 1 for s in lines[: line - 1]) + col


def texts(svg, cls=None):
    return [
        "".join(t.itertext())
        for t in svg.iter(SVG + "text")
        if cls is None or cls in (t.get("class") or "").split()
    ]


def boxes(svg):
    """(rect, text or None, hatched) of every timeline box."""
    out = []
    for g in svg.iter(SVG + "g"):
        if g.get("class") != "box":
            continue
        rects = g.findall(SVG + "rect")
        out.append((rects[0], g.find(SVG + "text"), any("hatch" in r.get("fill", "") for r in rects)))
    return out


def check_labels_fit(svg):
    """No box label is wider than its box: 0.6 em per character, as the renderer reckons."""
    drawn = 0
    for rect, text, _ in boxes(svg):
        if text is None:
            continue
        drawn += 1
        width = float(rect.get("width"))
        size = float(text.get("font-size"))
        assert 0.6 * size * len(text.text) <= width - 4 + 1e-6, (text.text, width, size)
        assert size >= 8
    return drawn


def ticks(svg):
    axis = next(g for g in svg.iter(SVG + "g") if g.get("class") == "axis")
    labels = [float(t) for t in texts(axis, "tick-label")]
    marks = [line for line in axis.iter(SVG + "line") if line.get("class") == "tick"]
    return labels, marks


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("report")
    binary = os.path.join(os.environ.get("PERSEUS_BIN_DIR", "build/bin"), "perseus")
    subprocess.run([binary, "report", "--out", str(out)], check=True, capture_output=True)
    return Page((out / "report.html").read_text(encoding="utf-8"))


def test_three_charts_titled_by_what_they_are(demo_report):
    page = demo_report
    assert len(page.svgs) == 3
    ids = [id_ for _, id_, _ in page.headings if id_]
    assert ids[:3] == ["frontier", "timeline", "straggler"]
    timeline_title = next(t for _, id_, t in page.headings if id_ == "timeline")
    assert re.fullmatch(r"T_min plan: iteration timeline, \d+(\.\d+)? s", timeline_title), timeline_title
    assert "frontier point" not in page.text


def test_header_says_setting_and_blocking_power(demo_report):
    text = " ".join(page for page in demo_report.paragraphs)
    assert "paper's emulation setting (time x10, energy x10 per GPU" in text
    assert "83.64 W per GPU (669.1 W per 8-GPU stage)" in text
    assert not re.search(r"\d\.\d{5,} W", text), "raw %f formatting"


def test_timeline_axis_legend_and_rows(demo_report):
    svg = demo_report.svgs[1]
    labels, marks = ticks(svg)
    assert len(labels) >= 4 and len(marks) == len(labels)
    assert labels == sorted(labels) and labels[0] == 0
    makespan = float(re.search(r"timeline, ([\d.]+) s", demo_report.text).group(1))
    assert labels[-1] <= makespan * 1.001 and labels[-1] >= makespan * 0.5
    all_text = texts(svg)
    assert any("time" in t and "(s)" in t for t in all_text)
    # The frequency colour legend: a gradient from the lowest to the highest clock.
    assert any(r.get("class") == "scale" for r in svg.iter(SVG + "rect"))
    mhz = [t for t in all_text if re.fullmatch(r"\d+ MHz", t)]
    assert len(mhz) == 2 and int(mhz[0].split()[0]) < int(mhz[1].split()[0])
    assert any("SM frequency" in t for t in all_text)
    # Forward and backward look different, and the legend says how.
    assert "forward (plain)" in all_text and "backward (hatched)" in all_text
    found = boxes(svg)
    assert len(found) == 8 * 12 * 2
    hatched = sum(1 for _, _, h in found if h)
    assert hatched == 8 * 12
    # Rows name the stage and its 8 tensor-parallel GPUs.
    assert "stage 0 (GPUs 0\u20137)" in all_text and "stage 7 (GPUs 56\u201363)" in all_text
    assert check_labels_fit(svg) > 0


def test_frontier_axis_units_ticks_and_labels_apart(demo_report):
    svg = demo_report.svgs[0]
    axis_labels = texts(svg, "axis-label")
    assert "iteration time (s)" in axis_labels
    assert any(re.search(r"\((kJ|MJ)\)$", t) for t in axis_labels), axis_labels
    y_ticks = [
        t
        for t in svg.iter(SVG + "text")
        if t.get("text-anchor") == "end" and re.fullmatch(r"-?[\d.]+", t.text or "")
    ]
    assert len(y_ticks) >= 4
    assert all(len(t.text.replace(".", "").lstrip("0")) <= 5 for t in y_ticks), [t.text for t in y_ticks]
    labels = [t for t in svg.iter(SVG + "text") if t.get("class") == "marker-label"]
    assert {t.text for t in labels} >= {"all-max", "T_min", "T*", "EnvPipe", "Zeus per-stage"}
    boxes_ = [
        (float(t.get("x")), float(t.get("y")) - 11, 0.6 * 12 * len(t.text), 14) for t in labels
    ]
    for i, a in enumerate(boxes_):
        for b in boxes_[i + 1 :]:
            apart = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
            assert apart, (a, b)


def test_straggler_chart_shows_all_max_and_flags_slower_methods(demo_report):
    svg = demo_report.svgs[2]
    legend = texts(svg, "legend")
    assert any(t.startswith("all-max") for t in legend)
    frame = next(r for r in svg.iter(SVG + "rect") if r.get("fill") == "none")
    bottom = float(frame.get("y")) + float(frame.get("height"))
    dashed = [p for p in svg.iter(SVG + "polyline") if p.get("stroke-dasharray")]
    assert len(dashed) == 1  # all-max
    ys = {float(pt.split(",")[1]) for pt in dashed[0].get("points").split()}
    assert all(y < bottom - 5 for y in ys), "all-max hidden on the axis"
    flagged = [t for t in legend if "slower than all-max" in t]
    rings = [c for c in svg.iter(SVG + "circle") if c.get("class") == "flag"]
    warnings = [p for p in demo_report.paragraphs if "slower than all-max" in p]
    # Whatever the emulation finds, a flag in the legend comes with rings on
    # the chart and a sentence under it, and no flag means none of them.
    assert bool(flagged) == bool(rings) == bool(warnings)


def test_flags_are_the_methods_emulate_finds_slower_than_all_max(demo_report, perseus_bin, gpt3_profile):
    """Cross-check with `perseus emulate --json` on the demo's setting: a method is flagged on the
    straggler chart exactly when its job iteration is slower than all-max's at some slowdown."""
    import json

    demo = ["--profile", gpt3_profile, "--stages", "8", "--microbatches", "12", "--tp", "8"]
    demo += ["--blocking-power", "83.64", "--time-scale", "10", "--energy-scale", "10"]
    demo += ["--pipelines", "128", "--straggler-slowdown", "1.0:1.5:0.05", "--json"]
    rows = json.loads(subprocess.run([perseus_bin, "emulate", *demo], check=True, capture_output=True).stdout)["rows"]
    slower = {
        m
        for r in rows
        for m, v in r.items()
        if isinstance(v, dict) and m != "all-max" and v["time"] > r["all-max"]["time"] * (1 + 1e-9)
    }
    legend = texts(demo_report.svgs[2], "legend")
    flagged = {t.split(" ")[0] for t in legend if "slower than all-max" in t and not t.startswith("\u26a0")}
    assert flagged == slower
    assert slower, "the demo has a method slower than all-max (zeus-per-stage): the flag is exercised"


def test_next_steps(demo_report):
    assert any(t == "Next steps" for _, _, t in demo_report.headings)
    items = " ".join(demo_report.items)
    assert "perseus show-plan plans --time" in items
    assert "perseus serve" in items
    assert "perseus demo --out plans" in items


def test_next_steps_commands_run(demo_report, perseus_bin, tmp_path):
    """The demo's next steps work as written: perseus demo --out, then show-plan for the deadline."""
    deadline = re.search(r"perseus show-plan plans --time ([\d.]+)", " ".join(demo_report.items)).group(1)
    plans = tmp_path / "plans"
    subprocess.run([perseus_bin, "demo", "--out", str(plans)], check=True, capture_output=True)
    shown = subprocess.run(
        [perseus_bin, "show-plan", str(plans), "--time", deadline], check=True, capture_output=True, text=True
    )
    assert "frequencies in execution order" in shown.stdout


def schedule_svg(perseus_bin, tmp_path, *args):
    path = tmp_path / "s.svg"
    subprocess.run([perseus_bin, "show-schedule", *args, "--svg", str(path)], check=True, capture_output=True)
    return ET.parse(path).getroot()


def test_schedule_svg_ticks_chunk_labels_and_fit(perseus_bin, tmp_path):
    svg = schedule_svg(
        perseus_bin, tmp_path, "--schedule", "interleaved-1f1b", "--stages", "4", "--microbatches", "8",
        "--virtual-stages", "2",
    )
    labels, marks = ticks(svg)
    assert len(labels) >= 4 and len(marks) == len(labels) and labels[0] == 0
    found = boxes(svg)
    assert len(found) == 4 * 2 * 8 * 2
    rank0 = [t.text for r, t, _ in found if t is not None and float(r.get("y")) < 60]
    # Microbatch 0's forward through both chunks of rank 0: two different labels.
    assert "F0c0" in rank0 and "F0c1" in rank0
    assert check_labels_fit(svg) >= len(found) // 2
    assert any("cN = the rank's model chunk N" in t for t in texts(svg))


def test_schedule_svg_with_profile_is_in_seconds_and_labels_fit(perseus_bin, gpt3_profile, tmp_path):
    svg = schedule_svg(
        perseus_bin, tmp_path, "--schedule", "1f1b", "--stages", "8", "--microbatches", "24",
        "--profile", gpt3_profile,
    )
    assert any(t.startswith("time (s") for t in texts(svg))
    labels, _ = ticks(svg)
    assert len(labels) >= 4
    found = boxes(svg)
    drawn = check_labels_fit(svg)
    # Narrow boxes lose their labels rather than overflow.
    assert 0 < drawn <= len(found)
    assert not any(t is not None and "c" in t.text for _, t, _ in found)
