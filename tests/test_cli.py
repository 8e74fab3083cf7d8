"""The command line: the variants table and JSON, and one-line errors with exit code 2."""
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from repnext_bench.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "repnext_bench", *args], capture_output=True, text=True,
                          env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=300)


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("repnext-bench") == "repnext_bench.cli:main"


def test_variants_json():
    result = run_cli("variants", "--variants", "m0,m1e", "--json")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [(r["variant"], r["form"]) for r in records] == [
        ("M0", "train"), ("M0", "official"), ("M0", "fused"),
        ("M1E", "train"), ("M1E", "official"), ("M1E", "fused"),
    ]
    m0_fused = records[2]
    assert m0_fused["params"] == 2_328_080 and m0_fused["macs"] == 387_537_600
    assert m0_fused["matches_paper"] is True and m0_fused["paper"]["params_m"] == 2.3
    assert records[5]["matches_paper"] is False and records[4]["matches_paper"] is True


def test_variants_table(capsys):
    assert main(["variants", "--variants", "m0,m1e"]) == 0
    out = capsys.readouterr().out
    assert "M0" in out and "2.328M" in out and "2.716M" in out and "0.59 ms" in out and "74.2 / 72.6" in out
    assert "official form" in out and "M1E: fused 5.246M" in out


def test_variants_at_another_resolution(capsys):
    assert main(["variants", "-v", "m0", "-r", "256", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert all(r["resolution"] == 256 and r["matches_paper"] is None for r in records)


@pytest.mark.parametrize("args,message", [
    (["variants", "--variants", "m7"], "unknown variant 'm7'"),
    (["variants", "--variants", "m5-m0"], "M5 comes after M0"),
    (["variants", "--variants", ""], "empty variant selector"),
    (["variants", "--resolution", "100"], "--resolution 100 is not valid"),
    (["variants", "--resolution", "abc"], "valid integer"),
    (["variants", "--frobnicate"], "No such option"),
    (["nonsense"], "No such command"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in captured.err + captured.out


def test_bad_input_through_the_real_entry_point():
    result = run_cli("variants", "--variants", "m0-m2e")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "valid variants" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_help_shows_the_computed_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # rich would eat a "[default: ...]" written into a help text as markup
    assert "the usable cores" in out and "REPNEXT_BENCH_CACHE" in out and "reports/run-" in out
