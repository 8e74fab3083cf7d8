"""A real, small gate: two arm processes of M0 at 64x64, few pairs."""
import json
import sys

import pytest

from repnext_bench.cli import main

SMALL = ["--variants", "m0", "--resolution", "64", "--pairs", "6", "--rounds", "2", "--block", "0.02"]


def run_gate(tmp_path, capsys, *args):
    code = main(["gate", *SMALL, "--json", "--output", str(tmp_path / "gate.json"), *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.exclusive  # timed: alone under pytest-xdist
def test_gate_catches_an_injected_slowdown_and_records_every_field(tmp_path, capsys):
    """A 40% slowdown never passes; a burst of noise on a shared VM can make one gate honestly
    inconclusive, so an inconclusive first gate gets one more try, which must fail it. The
    baseline arm runs another Python, named (here the same interpreter; the CI recipes' test
    runs two separate virtual environments)."""
    for attempt in range(2):
        folder = tmp_path / f"try{attempt}"
        folder.mkdir()
        code, report = run_gate(folder, capsys, "--candidate", "slowdown=40%", "--markdown", str(folder / "summary.md"),
                                "--baseline-python", sys.executable)
        record = report["results"][0]
        assert record["verdict"] != "pass", record["why"]
        if record["verdict"] != "inconclusive":
            break
    assert record["candidate"]["slowdown"] == 0.4 and not record["baseline"]["slowdown"]
    assert record["verdict"] == "fail" and code == 1, record["why"]
    assert record["estimate"]["change"] > 0.2
    assert report["kind"] == "gate" and len(report["results"]) == 1 and record["why"]
    assert set(record["estimate"]) >= {"change", "ci_low", "ci_high", "n", "method"}
    assert record["estimate"]["ci_low"] <= record["estimate"]["change"] <= record["estimate"]["ci_high"]
    pairs = record["pairs"]
    assert len(pairs) == 6 and {p["round"] for p in pairs} == {0, 1}
    assert {p["order"] for p in pairs} <= {"AB", "BA"} and all(p["baseline_ms"] > 0 < p["candidate_ms"] for p in pairs)
    for arm in ("baseline", "candidate"):
        info = record[arm]
        assert info["protocol"] == 1 and info["python"] and info["libraries"]["onnxruntime"]
        assert info["case"]["threads"] == 1 and info["backend"]["threads"] == 1
        assert info["inferences_per_sample"] >= 1
    assert record["plan"]["pairs"] == 6 and record["plan"]["thresholds"]["fail_above"] == 0.03
    assert "| case | baseline ms |" in (folder / "summary.md").read_text()
    assert json.loads((folder / "gate.json").read_text())["results"][0]["verdict"] == record["verdict"]
    assert record["baseline"]["executable"] == sys.executable


def test_the_exit_code_follows_the_verdicts():
    from repnext_bench.gate.compare import exit_code

    assert exit_code([{"verdict": "pass"}, {"verdict": "improved"}]) == 0
    assert exit_code([{"verdict": "pass"}, {"verdict": "inconclusive"}]) == 3
    assert exit_code([{"verdict": "inconclusive"}, {"verdict": "fail"}, {"verdict": "pass"}]) == 1


@pytest.mark.parametrize("args,message", [
    (["--baseline-python", "/no/such/python"], "no such file"),
    (["--candidate", "colour=blue"], "KEY=VALUE"),
    (["--candidate", "slowdown=lots"], "not a percentage"),
    (["--fail-above", "1", "--ci-above", "2"], "thresholds"),
    (["--pairs", "1"], "pairs >= 2"),
    (["--variants", "m9"], "unknown variant"),
])
def test_bad_gate_options_are_one_line(tmp_path, capsys, args, message):
    assert main(["gate", *SMALL, "--output", str(tmp_path / "g.json"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_an_arm_that_cannot_load_is_one_line(tmp_path, capsys):
    """A Python without this package's dependencies: the arm fails to load, the gate says so."""
    assert main(["gate", *SMALL, "--output", str(tmp_path / "g.json"), "--baseline-python", "/usr/bin/python3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "baseline arm" in err
    assert "repnext-bench is not installed for /usr/bin/python3" in err  # it runs outside any checkout


def test_requests_from_another_version_are_tolerated():
    """An arm of another version may send or receive fields this one does not know."""
    from repnext_bench.core.cases import Case
    from repnext_bench.measure.timing import TimingPlan
    from repnext_bench.run.lifecycle import Settings

    case = Case("M0", "fused", "onnxruntime", "cpu", "fp32", 1, 64, 1, "latency")
    settings = Settings(plan=TimingPlan(), seed=3)
    assert Case.from_dict({**case.to_dict(), "accelerator": "npu"}) == case
    newer = {**settings.to_dict(), "future_option": True}
    newer["plan"] = {**newer["plan"], "future_limit": 9}
    assert Settings.from_dict(newer) == settings
