"""`repnext-bench report`: merging real small reports from different settings and machines."""
import copy
import csv
import json

import pytest

from repnext_bench.cli import main
from repnext_bench.hardware.merge import merge, ship
from repnext_bench.report.schema import read_report, write_report


@pytest.fixture(scope="module")
def reports(real_runs, tmp_path_factory):
    """The two shared real runs (conftest), with different settings; the second also as if from
    another machine."""
    runs, _, _ = real_runs
    folder = tmp_path_factory.mktemp("hw")
    for name in ("a.json", "b.json"):
        (folder / name).write_text((runs / name).read_text())
    other = read_report(folder / "b.json")
    other["environment"]["cpu"].update(model="Test CPU 9000", features=["avx2", "fma"], usable_cores=2)
    other["environment"]["hostname"] = "other-box"
    write_report(other, folder / "other.json")
    return folder


def test_merge_lines_up_cases_and_shows_gaps(reports):
    loaded = [(name, read_report(reports / name)) for name in ("a.json", "b.json", "other.json")]
    merged = merge(loaded)
    assert len(merged["machines"]) == 2  # a and b come from this machine
    assert "Test CPU 9000 (AVX2, 2 cores)" in merged["machines"]  # the features set below, not the brand alone
    assert len(merged["rows"]) == 8 + 4 + 4
    from repnext_bench.hardware.merge import coverage
    lines, columns, cells = coverage(merged["rows"])
    assert lines == ["M0 train", "M0 fused", "M1 train", "M1 fused"]
    other_ov = next(c for c in columns if c.startswith("Test CPU 9000") and c.endswith("openvino"))
    assert cells[("M0 fused", other_ov)] == "ok" and ("M1 fused", other_ov) not in cells  # a gap


def test_ship_answers_with_a_speedup_over_torch_fp32_train(reports):
    merged = merge([("a.json", read_report(reports / "a.json"))])
    answers = ship(merged["rows"])
    assert [a["variant"] for a in answers] == ["M0", "M1"]
    for answer in answers:
        assert answer["rel_l2"] <= 1e-4 and answer["baseline_ms"] > 0
        speedup = answer["speedup_over_baseline"]  # ratio of medians, with a CI from the two sets of samples
        assert speedup["ratio"] == pytest.approx(answer["baseline_ms"] / answer["p50_ms"])
        assert speedup["ci95"][0] <= speedup["ratio"] <= speedup["ci95"][1]
        assert isinstance(answer["tied_with"], list)


def test_ship_calls_a_tie_when_the_fastest_cis_overlap(reports):
    """Two candidates whose 95% CIs of the median overlap are a tie, whichever median is lower."""
    (row,) = [r for r in merge([("a.json", read_report(reports / "a.json"))])["rows"]
              if r["variant"] == "M0" and r["form"] == "fused" and r["backend"] == "onnxruntime"]
    twin = dict(row, backend="openvino", p50_ms=row["p50_ms"] * 1.001,
                p50_ci=[row["p50_ci"][0] * 1.001, row["p50_ci"][1] * 1.001])
    far = dict(row, backend="torch", form="train", p50_ms=row["p50_ci"][1] * 3, p50_ci=[row["p50_ci"][1] * 2.5,
                                                                                       row["p50_ci"][1] * 3.5])
    (answer,) = ship([row, twin, far])
    assert answer["backend"] == "onnxruntime" and answer["tied_with"] == [f"openvino fused fp32 t{row['threads']}"]


def test_fused_speedup_in_the_best_latency_table_has_its_ci(reports):
    from repnext_bench.hardware.merge import best_latency

    rows = merge([("a.json", read_report(reports / "a.json"))])["rows"]
    fused = [r for r in best_latency(rows) if r["form"] == "fused"]
    assert len(fused) == 4
    for row in fused:  # from one sweep with the same settings: the paired estimate the report holds
        assert row["fused_speedup"] == row["paired_speedup"]
        assert row["fused_speedup"]["ci95"][0] <= row["fused_speedup"]["ratio"] <= row["fused_speedup"]["ci95"][1]


def test_markdown_tables_line_up(reports, capsys):
    out = reports / "cmp.md"
    assert main(["report", str(reports / "a.json"), str(reports / "other.json"), "--format", "md", "--output", str(out),
                 "--label", "this VM", "--label", "the other"]) == 0
    text = out.read_text()
    table = [line for line in text.split("### Best latency")[1].split("###")[0].splitlines() if line.startswith("|")]
    widths = {line.count("|") for line in table}
    assert len(widths) == 1  # every row has the header's number of cells
    assert len(table) == 2 + 8 + 4  # header, rule, M0 and M1 x 2 forms x 2 backends here, 4 rows of the other
    assert any("| the other | openvino |" in line for line in table)
    for name in ("latency", "tradeoff", "speedup"):
        png = reports / f"cmp-{name}-64px.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in text
    assert "repnext-bench run --variants m0,m1 --backend torch,onnxruntime" in text


def test_html_is_self_contained_and_embeds_the_plots(reports, capsys):
    out = reports / "cmp.html"
    assert main(["report", str(reports / "a.json"), str(reports / "b.json"), "--output", str(out)]) == 0
    page = out.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    assert "What should I ship" in page and "Environment of each machine" in page


def test_csv_has_every_merged_case(reports, capsys):
    out = reports / "cmp.csv"
    files = [str(reports / "a.json"), str(reports / "b.json")]
    assert main(["report", *files, "--format", "csv", "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8 + 4 and {r["backend"] for r in rows} == {"onnxruntime", "torch", "openvino"}


@pytest.mark.malformed_reports
def test_bad_inputs_are_one_line(reports, capsys, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    wrong = read_report(reports / "a.json")
    wrong["schema_version"] = 7
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    profile = copy.deepcopy(read_report(reports / "a.json"))
    profile["kind"] = "profile"
    (tmp_path / "profile.json").write_text(json.dumps(profile))
    for args, message in [([], "give one or more run reports"),
                          ([str(tmp_path / "list.json")], "not a repnext-bench report"),
                          ([str(tmp_path / "wrong.json")], "schema version 7"),
                          ([str(tmp_path / "profile.json")], "a profile report"),
                          ([str(reports / "a.json"), "--format", "pdf"], "--format"),
                          ([str(reports / "a.json"), "--label", "x", "--label", "y"], "one per report")]:
        assert main(["report", *args, "--output", str(tmp_path / "x.html")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_fused_speedup_compares_the_forms_and_nothing_else(reports):
    """A fused row in bf16 has no speedup over a train-time row in fp32: no twin, no ratio."""
    from repnext_bench.hardware.merge import best_latency

    rows = merge([("a.json", read_report(reports / "a.json"))])["rows"]
    for row in rows:
        if row["form"] == "fused":
            row["asked"] = "bf16"
    assert all(r["fused_speedup"] is None for r in best_latency(rows) if r["form"] == "fused")


def test_a_plot_without_labelled_series_has_no_legend_and_no_warning():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from repnext_bench.hardware.plots import _finish

    figure, ax = pyplot.subplots()
    ax.plot([1, 2], [1, 2])  # no label
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = _finish(figure, ax, "x", "y", "title")
    assert png.startswith(b"\x89PNG") and ax.get_legend() is None
    figure, ax = pyplot.subplots()
    ax.plot([1, 2], [1, 2], label="fused")
    _finish(figure, ax, "x", "y", "title")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fused"]
