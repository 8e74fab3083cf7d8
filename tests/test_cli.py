"""The command line: the variants table and JSON, and one-line errors with exit code 2."""
import ast
import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
from helpers import FAST

from repnext_bench import cli
from repnext_bench.backends import backend_names, get_backend
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
    (["variants", "--resolution", "100"], "--resolution '100' is not valid: use a positive multiple of 32"),
    (["variants", "--resolution", "abc"], "--resolution 'abc' is not valid"),
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


# ---- the package's shape: options declared once, one validator per kind ----------------------

CLI_DIR = Path(cli.__file__).parent
WRITERS = ("run", "profile", "gate", "report", "export")  # the commands that write a file or folder


def click_commands() -> dict:
    return typer.main.get_command(cli.app).commands


def declared_option_names() -> list[str]:
    """Every option name given to a typer.Option(...) call anywhere in the cli package."""
    names = []
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Option":
                names += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                          and a.value.startswith("-")]
    return names


def test_each_command_has_its_module():
    commands = list(click_commands())
    assert commands == ["variants", "run", "backends", "env", "profile", "gate", "compare", "verify", "report",
                        "export"]
    assert {p.stem for p in CLI_DIR.glob("*.py")} >= {*commands, "options", "validators"}


def test_every_option_name_is_declared_once_in_the_source():
    names = declared_option_names()
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert repeated == [], f"declared more than once: {repeated}"
    assert {"--json", "--resolution", "--cache-dir", "--output", "--format", "--forms", "--variants"} <= set(names)


def test_an_option_means_the_same_in_every_command():
    """Each option name maps to one declaration: the same names, aliases, type and help in every
    command that takes it."""
    seen: dict[str, tuple] = {}
    users: dict[str, list[str]] = {}
    for command_name, command in click_commands().items():
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            shape = (tuple(param.opts), tuple(param.secondary_opts), param.is_flag, param.help)
            for name in param.opts:
                users.setdefault(name, []).append(command_name)
                assert seen.setdefault(name, shape) == shape, f"{name} differs in {command_name}"
    assert len(users["--json"]) == 8 and len(users["--resolution"]) == 6 and len(users["--cache-dir"]) == 4
    assert sorted(users["--output"]) == sorted(WRITERS) and "--out" not in users
    assert seen["-o"][0] == ("--output", "-o")
    assert set(seen["-f"][0]) == {"--forms", "--form", "-f"} and sorted(users["--forms"]) == sorted(
        ["run", "profile", "gate", "verify", "export"])
    assert set(seen["-v"][0]) == {"--variants", "--variant", "-v"}
    assert sorted(users["--format"]) == ["export", "report", "run"]
    assert seen["--format"][3].startswith("The format of what --output receives: run: repnext")


def test_each_backend_switch_is_offered_to_the_backends_that_declare_it():
    """run offers every option a backend declares in Backend.run_options, and its help names
    exactly the backends that declare it."""
    from repnext_bench.cli.backend_options import RUN_OPTIONS

    declared = {name: get_backend(name).run_options for name in backend_names()}
    assert set(RUN_OPTIONS) == {key for keys in declared.values() for key in keys}
    params = {p.name: p for p in click_commands()["run"].params}
    for key, param_name in RUN_OPTIONS.items():
        if key in ("coreml_format", "coreml_weights"):  # shared with export, whose help cannot name run's backends
            continue
        takers = {name for name, keys in declared.items() if key in keys}
        named = re.match(r"([a-z, ]+?) backends?:", params[param_name].help).group(1)
        assert set(re.split(r", | and ", named)) == takers, (key, named)


def test_reading_the_declarations_loads_no_runtime():
    """A usage error reads every backend's declarations: importing the backend classes must load
    neither torch nor any runtime, so that the error stays instant."""
    code = ("import sys\nfrom repnext_bench.backends import backend_names, get_backend\n"
            "[get_backend(n).run_options for n in backend_names()]\n"
            "runtimes = ('torch', 'onnxruntime', 'openvino', 'coremltools', 'tensorrt')\n"
            "print(sorted(m for m in runtimes if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("args,line", [
    (["-b", "onnxruntime", "--cuda-graphs"],
     "error: --cuda-graphs: none of the chosen backends (onnxruntime) takes it; it applies to cuda, tensorrt"),
    (["-b", "torch,openvino", "--autocast"],
     "error: --autocast: none of the chosen backends (torch, openvino) takes it; it applies to cuda"),
    (["-b", "onnxruntime", "--device", "cpu", "--coreml-format", "mlprogram"],
     "error: --coreml-format: none of the chosen backends (onnxruntime) takes it; it applies to coreml"),
    (["-b", "openvino", "--channels-last"],
     "error: --channels-last: none of the chosen backends (openvino) takes it; it applies to torch, cuda"),
])
def test_a_run_switch_no_chosen_backend_takes_is_a_usage_error(capsys, args, line):
    assert main(["run", "-v", "m0", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [line] and captured.out == ""


def test_a_switch_one_chosen_backend_takes_passes_the_check(capsys):
    """With torch among the backends --compile is fine; the next check (a bad --duration) answers."""
    assert main(["run", "-v", "m0", "-b", "onnxruntime,torch", "--compile", "--duration", "-1"]) == 2
    assert "--duration and --warmup must be >= 0" in capsys.readouterr().err


def test_backend_options_follow_the_declarations(monkeypatch, capsys):
    from repnext_bench.backends.ort import OnnxRuntimeBackend
    from repnext_bench.cli.backend_options import per_backend

    values = {"channels_last": True, "compile": False, "autocast": False, "cuda_graphs": True,
              "coreml_format": ["mlprogram", "neuralnetwork"], "coreml_weights": False}
    assert per_backend(values) == {
        "torch": {"channels_last": True}, "cuda": {"channels_last": True, "cuda_graphs": True},
        "tensorrt": {"cuda_graphs": True},
        "coreml": [{"coreml_format": "mlprogram"}, {"coreml_format": "neuralnetwork"}]}
    monkeypatch.setattr(OnnxRuntimeBackend, "run_options", ("cuda_graphs",))  # a backend that learns a switch
    assert per_backend(values)["onnxruntime"] == {"cuda_graphs": True}
    assert main(["run", "-v", "m0", "-b", "onnxruntime", "--cuda-graphs", "--duration", "-1"]) == 2
    assert "--duration and --warmup must be >= 0" in capsys.readouterr().err  # the switch check passed


RESOLUTION_48 = re.compile(r"--resolution '48' is not valid: use (a )?positive multiples? of 32")


@pytest.mark.parametrize("args", [
    ["variants", "-r", "48"], ["profile", "-r", "48"], ["gate", "-r", "48"], ["verify", "-r", "48"],
    ["export", "--format", "onnx", "-o", "{tmp}", "-r", "48"], ["run", "-r", "48"],
    ["gate", "--candidate", "resolution=48"], ["gate", "-r", "0"], ["verify", "--resolution", "16"],
], ids=" ".join)
def test_one_resolution_rule_in_every_command(capsys, tmp_path, args):
    """A positive multiple of 32 everywhere: gate and verify took 48 (only ">= 32") before."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "positive multiple" in lines[0], lines
    if args[-1] == "48" and "--candidate" not in args:
        assert RESOLUTION_48.search(lines[0]), lines[0]
    assert not (tmp_path / "manifest.json").exists()


def test_the_validators_hold_one_rule_per_kind():
    from repnext_bench.cli import validators as v
    from repnext_bench.cli.common import UsageProblem

    assert v.resolution("224") == 224 and v.resolutions("224, 256,224") == [224, 256]
    for bad in ("48", "0", "-32", "abc", "224,256", ""):
        with pytest.raises(UsageProblem, match="positive multiple of 32"):
            v.resolution(bad)
    assert v.positive("3", "--batch") == 3 and v.positives("1,8", "--batch") == [1, 8]
    with pytest.raises(UsageProblem, match="--batch '1,2' is not valid: use a positive integer"):
        v.positive("1,2", "--batch")
    assert v.percent("5%", "--x") == pytest.approx(0.05) and v.percent("12.5", "--x") == pytest.approx(0.125)
    with pytest.raises(UsageProblem, match="--x 'lots' is not a percentage"):
        v.percent("lots", "--x")
    with pytest.raises(UsageProblem, match="give one of"):
        v.choice("torch,openvino", "--backend", ("torch", "openvino"))


@pytest.mark.parametrize("command", ["run", "profile", "gate"])
def test_output_is_the_option_that_writes(command, capsys):
    assert main([command, "-v", "m0", "-o", "/proc/forbidden/x.json"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--output /proc/forbidden/x.json: cannot write there" in line


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-run")
    assert main(["run", "-v", "m0", "-f", "fused", "-b", "onnxruntime", *FAST, "--quiet", "-o",
                 str(folder / "run.json"), "--cache-dir", str(folder / "cache")]) == 0
    return folder / "run.json"


@pytest.mark.parametrize("flag", ["--output", "-o"])
def test_report_writes_to_output(one_run, tmp_path, capsys, flag):
    out = tmp_path / "merged.csv"
    assert main(["report", str(one_run), "--format", "csv", flag, str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "M0" in out.read_text() and "onnxruntime" in out.read_text()


def test_profile_takes_one_variant_under_either_name(capsys):
    for flag in ("--variant", "--variants", "-v"):
        assert main(["profile", flag, "m0,m1", "-r", "64"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == ["error: --variant takes one variant, not 2 ('m0,m1'); e.g. --variant m4"]


def test_new_usage_errors_import_no_runtime():
    heavy = ("torch", "onnxruntime", "openvino", "coremltools", "tensorrt")
    for args in (["run", "-b", "onnxruntime", "--cuda-graphs"], ["gate", "-r", "48"], ["verify", "-r", "48"],
                 ["profile", "-v", "m0-m2"], ["run", "--help"]):
        code = ("import json, sys\nfrom repnext_bench.cli import main\n"
                f"code = main({args!r})\n"
                f"print(json.dumps([code, [m for m in {heavy!r} if m in sys.modules]]))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        exit_code, imported = json.loads(result.stdout.strip().splitlines()[-1])
        assert exit_code == (0 if "--help" in args else 2) and imported == [], (args, result.stderr)
