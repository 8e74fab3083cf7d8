"""INT8: calibration and evaluation folders, ONNX Runtime's QDQ and NNCF's quantization, the
count of what ran INT8 from the runtime's own graph, parity on the evaluation inputs (train
and fused side by side, with a CI), top-1 on a labelled folder, profile, export and report."""
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST
from PIL import Image

from repnext_bench.cli import main
from repnext_bench.quant import images as qi
from repnext_bench.quant.accuracy import paired_comparison, per_image
from repnext_bench.quant.layers import count_kinds, layer_kind, no_int8_reason
from repnext_bench.report.schema import read_report

SMALL = ["--calibration-size", "8"]


def write_images(folder: Path, count: int, seed: int = 0, size=(80, 60), suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img{index:03d}{suffix}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """An ImageNet-style folder: two classes, three images each (a JPEG among them), and its map."""
    root = tmp_path_factory.mktemp("eval")
    write_images(root / "n01440764", 3, seed=1)
    write_images(root / "n01443537", 2, seed=2)
    write_images(root / "n01443537", 1, seed=3, suffix=".JPEG")
    (root / qi.CLASS_MAP).write_text(json.dumps({"n01440764": 0, "n01443537": 1}))
    return root


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One export cache for the tests that do not assert a cache miss: M0 at 64 px quantized
    on synthetic inputs (8) by ONNX Runtime and NNCF once, not once per test."""
    return tmp_path_factory.mktemp("int8cache")


# images and folders ---------------------------------------------------------------------------

def test_an_image_is_resized_cropped_and_normalized_as_the_evaluation(tmp_path):
    """A flat grey image: the centre crop of the right side, each channel (0.5 - mean) / std."""
    path = tmp_path / "grey.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(path)
    array = qi.prepare_image(path, 64)
    assert array.shape == (3, 64, 64) and array.dtype == np.float32
    expected = (128 / 255 - qi.MEAN) / qi.STD
    assert np.allclose(array.mean(axis=(1, 2)), expected, atol=1e-3)


def test_the_crop_is_the_centre_after_a_resize_of_the_short_side(tmp_path):
    """Left half black, right half white: the crop's centre column is where they meet."""
    path = tmp_path / "halves.png"
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, 100:] = 255
    Image.fromarray(pixels).save(path)
    array = qi.prepare_image(path, 32)
    assert array[0, :, 2].mean() < 0 < array[0, :, -3].mean()


def test_a_folder_without_images_and_a_broken_image_are_clear_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(qi.ImageFolderError, match="holds no JPEG or PNG image"):
        qi.list_images(tmp_path)
    (tmp_path / "broken.png").write_text("not a png")
    with pytest.raises(qi.ImageFolderError, match="not a readable JPEG or PNG"):
        qi.prepare_image(tmp_path / "broken.png", 32)


def test_the_calibration_identity_follows_the_files_and_the_size(tmp_path):
    paths = write_images(tmp_path / "cal", 4)
    first = qi.CalibrationSet(str(tmp_path / "cal"), 3).identity()
    assert first["calibration"] == "folder" and first["calibration_size"] == 3
    assert qi.CalibrationSet(str(tmp_path / "cal"), 4).identity() != first
    assert qi.CalibrationSet(str(tmp_path / "cal"), 3).identity() == first
    Image.new("RGB", (80, 60), (1, 2, 3)).save(paths[0])  # one image changed: another set
    assert qi.CalibrationSet(str(tmp_path / "cal"), 3).identity() != first
    assert qi.CalibrationSet(str(tmp_path / "cal"), 3).arrays(32).shape == (3, 3, 32, 32)
    synthetic = qi.CalibrationSet(None, 5)
    assert synthetic.describe() == {"source": "synthetic", "size": 5, "seed": 0}
    assert synthetic.arrays(32).shape == (5, 3, 32, 32)


def test_a_labelled_folder_takes_its_class_map(labelled, tmp_path):
    found = qi.eval_set(labelled)
    assert found.labels == [0, 0, 0, 1, 1, 1] and found.class_map.endswith(qi.CLASS_MAP)
    keras = tmp_path / "keras.json"
    keras.write_text(json.dumps({"7": ["n01440764", "tench"], "9": ["n01443537", "goldfish"]}))
    assert qi.eval_set(labelled, keras).labels == [7, 7, 7, 9, 9, 9]
    numbered = tmp_path / "numbered"
    write_images(numbered / "3", 1)
    write_images(numbered / "12", 1)
    assert sorted(qi.eval_set(numbered).labels) == [3, 12]


def test_a_labelled_folder_without_a_map_or_with_a_partial_one_is_refused(labelled, tmp_path):
    bare = tmp_path / "bare"
    write_images(bare / "cat", 1)
    write_images(bare / "dog", 1)
    with pytest.raises(qi.ImageFolderError, match="cannot tell the class index"):
        qi.eval_set(bare)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"n01440764": 0}))
    with pytest.raises(qi.ImageFolderError, match="no class index for the folder"):
        qi.eval_set(labelled, partial)


# what ran INT8 --------------------------------------------------------------------------------

def test_layers_are_sorted_by_what_they_ran():
    assert layer_kind("QLinearConv") == "int8" and layer_kind("QGemm") == "int8"
    assert layer_kind("Convolution", "u8") == "int8" and layer_kind("Convolution", "f32") == "float"
    assert layer_kind("DequantizeLinear") == "qdq" and layer_kind("FakeQuantize", "f32") == "qdq"
    assert layer_kind("Reorder", "u8") == "reorder" and layer_kind("Transpose") == "reorder"
    assert layer_kind("Const", "i8") is None and layer_kind("Conv") == "float"
    counts = count_kinds([("QLinearConv", None), ("Conv", None), ("QuantizeLinear", None), ("Const", "f32")])
    assert counts == {"int8": 1, "float": 1, "qdq": 1, "reorder": 0}
    assert no_int8_reason("X", counts) is None
    assert "ran no layer in INT8" in no_int8_reason("X", {"int8": 0, "float": 3, "qdq": 2, "reorder": 0})


def test_predict_runs_chunks_of_the_bound_batch_and_pads_the_last():
    from repnext_bench.backends import Session

    class Doubling(Session):
        seen: list = []

        def run(self): ...

        def output(self): ...

        def describe(self): ...

        def infer(self, images):
            self.seen.append(len(images))
            return images.reshape(len(images), -1)[:, :2] * 2

    images = np.arange(5 * 2, dtype=np.float32).reshape(5, 2, 1, 1)
    out = Doubling().predict(images, 2)
    assert Doubling.seen == [2, 2, 2] and out.shape == (5, 2)
    assert np.array_equal(out, images.reshape(5, 2) * 2)


def test_the_paired_comparison_finds_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((200, 10))
    small = ref + 0.01 * rng.standard_normal((200, 10))
    large = ref + 0.03 * rng.standard_normal((200, 10))
    same = ref + 0.01 * rng.standard_normal((200, 10))
    worse = paired_comparison(per_image(large, ref), per_image(small, ref))
    assert worse["rel_l2_ratio_ci95"][0] > 1
    tie = paired_comparison(per_image(same, ref), per_image(small, ref))
    assert tie["rel_l2_ratio_ci95"][0] < 1 < tie["rel_l2_ratio_ci95"][1]


# backends -------------------------------------------------------------------------------------

def _prepared(backend_name: str, cache: Path, calibration=None, form="fused"):
    import torch

    from repnext_bench.backends import PrepareContext, get_backend
    from repnext_bench.core.cases import Case
    from repnext_bench.export import ExportCache, weights_hash
    from repnext_bench.models import convert, create_model
    from repnext_bench.models.randomize import randomize

    torch.manual_seed(0)
    reference = randomize(create_model("m0", "train"), 0)
    model = convert(reference, form)
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    case = Case("M0", form, backend_name, "cpu", "int8", 2, 64, 1, "latency")
    context = PrepareContext(ExportCache(cache), 17, weights_hash(model),
                             calibration=calibration or qi.CalibrationSet(None, 8))
    with torch.inference_mode():
        expected = reference(torch.from_numpy(images)).numpy()
    return get_backend(backend_name).prepare(model, case, images, context), images, expected


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_int8_runs_int8_layers_read_back_from_the_runtime(backend_name, shared_cache, exercised):
    prepared, images, expected = _prepared(backend_name, shared_cache)
    session = prepared.session
    session.run()
    described = session.describe()
    layers = described.quantization["layers"]
    assert described.precision_effective == "int8" and layers["int8"] > 10, layers
    assert described.quantization["calibration"]["source"] == "synthetic"
    error = np.linalg.norm(session.output() - expected) / np.linalg.norm(expected)
    assert 1e-4 < error < 0.3  # quantized: near the fp32 output, not equal to it
    assert np.allclose(session.predict(images, 2), session.output(), atol=1e-5)
    exercised(f"{backend_name} int8", f"{layers['int8']} int8 layers")


def test_the_quantized_artifact_is_cached_by_its_calibration(tmp_path, shared_cache):
    write_images(tmp_path / "cal", 4)
    first = _prepared("onnxruntime", shared_cache)[0].artifact  # made here or by an earlier test
    again = _prepared("onnxruntime", shared_cache)[0].artifact
    folder = _prepared("onnxruntime", shared_cache, qi.CalibrationSet(str(tmp_path / "cal"), 4))[0].artifact
    assert again.cache_hit and again.key == first.key and again.path == first.path
    assert not folder.cache_hit and folder.key != first.key and folder.info["calibration"]["source"] == "folder"


def test_torch_does_not_run_int8_and_says_so():
    from repnext_bench.backends import get_backend
    from repnext_bench.core.cases import Case

    reason = get_backend("torch").unsupported(Case("M0", "fused", "torch", "cpu", "int8", 1, 64, 1, "latency"))
    assert "does not run int8" in reason


# the command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, labelled, shared_cache):
    folder = tmp_path_factory.mktemp("int8run")
    calibration = folder / "cal"
    write_images(calibration, 6, seed=9)
    path = folder / "run.json"
    code = main(["run", "-v", "m0", "-b", "onnxruntime,openvino", "-p", "fp32,int8", "-f", "fused", *FAST,
                 *SMALL, "--eval", str(labelled), "--calibration", str(calibration),
                 "--cache-dir", str(folder / "cache"), "-o", str(path)])
    synthetic = folder / "synthetic.json"
    code_synthetic = main(["run", "-v", "m0", "-b", "onnxruntime", "-p", "int8", "-f", "train,fused", *FAST, *SMALL,
                           "--cache-dir", str(shared_cache), "-o", str(synthetic)])
    return code, read_report(path), code_synthetic, read_report(synthetic), path


def test_a_run_reports_int8_with_its_calibration_layers_and_parity(int8_run):
    code, report, _, synthetic, _ = int8_run
    assert code == 0
    int8 = [r for r in synthetic["results"] if r["case"]["precision"] == "int8"]
    assert len(int8) == 2 and all(r["status"] == "ok" for r in int8)
    for result in int8:
        assert result["precision_effective"] == "int8"
        assert result["quantization"]["calibration"] == {"source": "synthetic", "size": 8, "seed": 0}
        assert result["quantization"]["layers"]["int8"] > 0
        parity = result["parity"]
        assert parity["inputs"] == "synthetic" and parity["images"] == qi.SYNTHETIC_EVAL_SIZE
        assert len(parity["per_image"]["sq_err"]) == qi.SYNTHETIC_EVAL_SIZE and parity["rel_l2"] > 1e-4


def test_an_eval_folder_gives_top1_of_both_and_int8_parity_on_its_images(int8_run):
    code, report, *_ = int8_run
    results = report["results"]
    assert code == 0 and len(results) == 4 and all(r["status"] == "ok" for r in results)
    for result in results:
        accuracy = result["accuracy"]
        assert accuracy["images"] == 6 and 0 <= accuracy["top1"] <= 1 and 0 <= accuracy["reference_top1"] <= 1
        if result["case"]["precision"] == "int8":
            assert result["parity"]["inputs"] == "eval folder" and result["parity"]["images"] == 6
        else:  # fp32 matches the reference on the folder's images: the same top-1
            assert accuracy["top1"] == accuracy["reference_top1"]
    assert all(r["quantization"]["calibration"]["source"] == "folder" for r in results
               if r["case"]["precision"] == "int8")


def test_the_table_says_synthetic_calibration_and_compares_the_forms(int8_run, capsys, tmp_path):
    from rich.console import Console

    from repnext_bench.report.quant_view import quant_lines
    from repnext_bench.report.results import results_table

    _, _, _, synthetic, _ = int8_run
    console = Console(width=200, record=True)
    console.print(results_table(synthetic["results"]))
    for line in quant_lines(synthetic["results"]):
        console.print(line)
    text = console.export_text()
    assert "int8 syn" in text and "syn: INT8 calibrated on synthetic inputs" in text
    assert "INT8 error, fused vs train-time form (M0 onnxruntime)" in text and "95% CI" in text


@pytest.mark.parametrize("args,line", [
    (["run", "-b", "onnxruntime", "--calibration", "."], "error: --calibration applies to --precision int8"),
    (["run", "-b", "onnxruntime", "-p", "int8", "--calibration-size", "0"], "error: --calibration-size 0 is not valid"),
    (["run", "-b", "onnxruntime", "-p", "int8", "--calibration", "/nonexistent"], "error: --calibration: "),
    (["run", "-b", "onnxruntime", "--class-map", "x.json"], "error: --class-map applies to --eval"),
    (["export", "--format", "onnx", "-o", "/tmp/x", "-p", "int8", "--calibration", "/nonexistent"],
     "error: --calibration: /nonexistent is not a folder"),
])
def test_bad_int8_options_are_one_line(args, line, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line), err


def test_an_eval_folder_that_cannot_be_labelled_is_one_line(tmp_path, capsys):
    write_images(tmp_path / "cat", 1)
    write_images(tmp_path / "dog", 1)
    assert main(["run", "-b", "onnxruntime", "--eval", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --eval: ")


def test_profile_shows_int8_and_float_nodes_per_component(tmp_path, capsys, shared_cache):
    path = tmp_path / "profile.json"
    assert main(["profile", "-v", "m0", "-b", "openvino", "-p", "int8", "-r", "64", "--iterations", "3", "-f",
                 "train,fused", "--duration", "0", *SMALL, "--cache-dir", str(shared_cache), "-o",
                 str(path)]) == 0
    out = capsys.readouterr().out
    assert "int8 time" in out and "q/dq" in out and "fused int8 nodes" in out
    assert "calibration: synthetic (8 inputs)" in out and "says nothing about" in out
    _, profile = read_report(path)["results"]
    components = profile["summary"]["by_component"]
    assert sum(row["kinds"]["int8"] for row in components) > 0
    assert profile["quantization"]["layers"]["int8"] > 0 and profile["parity"]["inputs"] == "synthetic"


def test_export_writes_quantized_onnx_and_ir_with_their_calibration(int8_run, tmp_path):
    """The run's quantizations of M0 fused on its calibration folder, exported from its cache."""
    import onnx

    folder = int8_run[-1].parent
    out = tmp_path / "out"
    assert main(["export", "--format", "onnx,openvino", "-p", "int8", "-r", "64", "-o", str(out),
                 "--calibration", str(folder / "cal"), "--cache-dir", str(folder / "cache")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    onnx_record, ir_record = manifest["artifacts"]
    assert onnx_record["calibration"]["source"] == "folder" and onnx_record["calibration"]["size"] == 6
    assert ir_record["fake_quantize_ops"] > 0 and ir_record["versions"]["nncf"]
    ops = {node.op_type for node in onnx.load(str(out / onnx_record["files"][0])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_report_ships_int8_only_within_the_bound(int8_run, tmp_path):
    from repnext_bench.hardware.merge import merge, ship

    _, report, *_ = int8_run
    merged = merge([("run.json", report)])
    loose = ship(merged["rows"], max_rel_err=1.0)
    strict = ship(merged["rows"], max_rel_err=1e-3)
    assert all(r["precision"] != "int8" for r in strict)
    fastest = min((r for r in merged["rows"] if r["status"] == "ok"), key=lambda r: r["p50_ms"])
    assert loose[0]["p50_ms"] == fastest["p50_ms"]


def test_report_takes_max_rel_err_and_plots_int8_beside_fp32(int8_run, tmp_path, capsys):
    *_, path = int8_run
    out = tmp_path / "cmp.md"
    assert main(["report", str(path), "--format", "md", "-o", str(out), "--max-rel-err", "0.5"]) == 0
    text = out.read_text()
    assert "rel err at most 0.5 against the fp32 train-time model" in text
    best = text.split("### Best latency")[1].split("###")[0]
    assert "| int8 |" in best and "| fp32 |" in best  # INT8 beside the float precisions, not in their place
    assert main(["report", str(path), "--max-rel-err", "-1"]) == 2
    assert "--max-rel-err -1 is not valid" in capsys.readouterr().err


# what a review found ----------------------------------------------------------------------------

def test_a_sample_of_a_folder_is_spread_over_its_classes(tmp_path):
    for name in ("a", "b", "c"):
        write_images(tmp_path / name, 4, seed=ord(name))
    files = qi.CalibrationSet(str(tmp_path), 3).files()
    assert [p.parent.name for p in files] == ["a", "b", "c"]
    assert qi.spread(list(range(10)), None) == list(range(10)) and qi.spread([1, 2], 5) == [1, 2]


def test_hidden_files_and_folders_are_not_images(tmp_path):
    write_images(tmp_path / "3", 1)
    write_images(tmp_path / ".ipynb_checkpoints", 1)
    (tmp_path / "3" / "._img000.png").write_bytes(b"resource fork")
    found = qi.eval_set(tmp_path)
    assert found.labels == [3] and len(qi.list_images(tmp_path)) == 1


def test_class_indices_outside_the_model_and_a_folder_one_level_up_are_clear(tmp_path):
    write_images(tmp_path / "1000", 1)
    with pytest.raises(qi.ImageFolderError, match=r"class indices \[1000\] are outside the model's 0-999"):
        qi.eval_set(tmp_path)
    nested = tmp_path / "nested"
    write_images(nested / "val" / "cat", 1)
    with pytest.raises(qi.ImageFolderError, match="one level down"):
        qi.eval_set(nested)


def test_a_broken_calibration_image_is_one_line_before_any_case(tmp_path, capsys):
    write_images(tmp_path / "cal", 2)
    (tmp_path / "cal" / "zz.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["run", "-b", "onnxruntime", "-p", "int8", "--calibration", str(tmp_path / "cal")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --calibration: ") and "zz.jpg" in err[0]


def test_fewer_calibration_images_than_asked_is_said(tmp_path, capsys):
    from repnext_bench.cli.validators import quantization_settings

    write_images(tmp_path / "cal", 3)
    found = quantization_settings(["int8"], tmp_path / "cal", 500)
    assert found["calibration"] == str((tmp_path / "cal").resolve())
    note = " ".join(capsys.readouterr().err.split())  # as wide as the terminal: a long path wraps it
    assert "holds 3 images: calibrating on those 3, not --calibration-size 500" in note


def test_a_gate_arm_in_int8_takes_a_calibration(tmp_path, capsys):
    """--calibration with INT8 only in the candidate arm is not refused for want of int8."""
    args = ["gate", "-p", "fp32", "--candidate", "precision=INT8", "--calibration", str(tmp_path / "missing")]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == f"error: --calibration: {tmp_path / 'missing'} is not a folder"


def test_openvino_counts_only_the_layers_that_run_per_inference(shared_cache):
    """The runtime model also lists reorders and reshapes of the weights, done once at compile
    time: only the layers that depend on the input are counted, so reorders are a few."""
    from repnext_bench.quant.layers import openvino_layers

    prepared, *_ = _prepared("openvino", shared_cache)
    compiled = prepared.session.compiled
    every = len([op for op in compiled.get_runtime_model().get_ordered_ops()])
    counted = openvino_layers(compiled)
    assert 0 < len(counted) < every
    assert not any(kind in ("Const", "Reshape") for kind, _ in counted)
    layers = prepared.session.quantization["layers"]
    assert layers["reorder"] < layers["int8"] + layers["float"]


def test_the_evaluation_runs_after_the_rounds_in_a_process_of_its_own(monkeypatch, tmp_path):
    """The sweep asks a fresh process for each INT8 case's evaluation (op "evaluation"), after its
    rounds, and puts the reply's parity and top-1 into the result; fp32 cases without --eval
    are not evaluated, and a case whose evaluation failed keeps the parity of its bound input,
    saying so."""
    from repnext_bench.core.cases import Case
    from repnext_bench.measure.timing import TimingPlan
    from repnext_bench.run import case_run, sweep
    from repnext_bench.run.lifecycle import Settings

    asked = []
    reply = {"parity": {"rel_l2": 0.02, "max_abs": 0.1, "top1_agree": 0.9, "images": 64, "inputs": "synthetic"},
             "accuracy": None}

    def fake_run_once(case, settings, limit, op):
        asked.append((case.precision, op))
        return reply if case.form == "fused" else {"error": "no luck"}

    monkeypatch.setattr(sweep, "run_once", fake_run_once)
    cases = [Case("M0", form, "onnxruntime", "cpu", precision, 1, 64, 1, "latency")
             for form in ("train", "fused") for precision in ("fp32", "int8")]
    report = {"results": []}
    runner = sweep.Sweep(cases, Settings(TimingPlan()), sweep.RoundsPlan(), 60.0, report)
    bound = {"rel_l2": 1e-3, "max_abs": 1e-3, "top1_agree": 1.0}
    for case in cases:
        run = case_run.CaseRun(case)
        run.add_block({"samples_ms": [1.0, 1.1], "completed": 2, "wall_s": 0.002}, 0, 0)
        run.loaded, run.finished = {"block_n": 2}, {"parity": bound}
        runner.runs.append(run)
    runner.report["sweep"] = {}
    runner._evaluate()
    assert asked == [("int8", "evaluation"), ("int8", "evaluation")]
    parities = {(r["case"]["form"], r["case"]["precision"]): r["parity"] for r in report["results"]}
    assert parities[("fused", "int8")]["images"] == 64
    assert parities[("train", "int8")] == {**bound, "images": 1, "inputs": "bound input"}  # its evaluation failed
    assert parities[("fused", "fp32")] == bound


def test_a_peak_that_includes_the_export_is_marked(int8_run):
    from rich.console import Console

    from repnext_bench.report.results import results_table

    _, report, *_ = int8_run
    scopes = {r["memory"]["peak_scope"] for r in report["results"]}
    assert any(scope.endswith(", export included") for scope in scopes), scopes  # one lifetime, a fresh cache
    console = Console(width=220, record=True)
    console.print(results_table(report["results"]))
    assert "* peak RSS includes making the export" in console.export_text()


def test_verify_and_export_say_synthetic_calibration(tmp_path, capsys, shared_cache):
    assert main(["export", "--format", "onnx", "-p", "int8", "-r", "64", "-o", str(tmp_path / "out"),
                 *SMALL, "--cache-dir", str(shared_cache)]) == 0
    out = capsys.readouterr().out
    assert "int8 (synthetic calibration)" in out and "right for timing, not for accuracy" in out
    assert main(["verify", "-v", "m0", "-b", "onnxruntime", "-p", "int8", "-f", "fused", "-r", "64",
                 *SMALL, "--cache-dir", str(shared_cache)]) == 0
    out = capsys.readouterr().out
    assert "int8 (synthetic calibration)" in out and "int8 1e-01" in out


def test_a_served_int8_case_carries_its_quantization_and_evaluation(tmp_path, shared_cache):
    path = tmp_path / "served.json"
    assert main(["run", "-v", "m0", "-f", "fused", "-b", "onnxruntime", "-p", "int8", "--mode", "server", "--qps",
                 "40", "--requests", "100", *FAST, *SMALL, "--cache-dir", str(shared_cache), "-q",
                 "-o", str(path)]) == 0
    (result,) = read_report(path)["results"]
    assert result["status"] == "ok" and result["server"]["requests"] == 100
    assert result["quantization"]["layers"]["int8"] > 0 and result["precision_effective"] == "int8"
    assert result["parity"]["inputs"] == "synthetic" and result["parity"]["images"] == qi.SYNTHETIC_EVAL_SIZE


# what a second review found -------------------------------------------------------------------

def test_only_int8_joins_its_fp32_twin_and_a_large_group_goes_in_pieces():
    from repnext_bench.core.cases import Case
    from repnext_bench.measure.timing import TimingPlan
    from repnext_bench.run import case_run, sweep
    from repnext_bench.run.lifecycle import Settings

    def case(precision, form="fused"):
        return Case("M0", form, "openvino", "cpu", precision, 1, 64, 1, "latency")

    assert sweep._group_key(case("int8")) == sweep._group_key(case("fp32", "train"))
    assert sweep._group_key(case("bf16")) != sweep._group_key(case("fp32"))
    cases = [case(p, f) for p in ("fp32", "int8") for f in ("train", "fused")]
    runner = sweep.Sweep(cases, Settings(TimingPlan()), sweep.RoundsPlan(max_live=3), 60.0, {"results": []})
    runner.runs = [case_run.CaseRun(c) for c in cases]
    batches = runner._batches()
    assert all(sum(map(len, groups)) <= 3 for groups, _ in batches) and sum(
        len(g) for groups, _ in batches for g in groups) == 4


def test_the_form_verdict_needs_enough_inputs_and_an_error_in_both(monkeypatch):
    from repnext_bench.core.cases import Case
    from repnext_bench.core.records import Parity, Result
    from repnext_bench.report.quant_view import form_verdict

    def result(sq_err, form):
        images = {"sq_err": sq_err, "sq_ref": [1.0] * len(sq_err), "agree": [1] * len(sq_err)}
        parity = Parity(0.1, 0.1, 1.0, len(sq_err), "synthetic", images)
        return Result(Case("M0", form, "onnxruntime", "cpu", "int8", 1, 64, 1, "latency"), "ok", parity=parity)

    assert "too few to compare" in form_verdict(result([0.1, 0.2], "fused"), result([0.4, 0.3], "train"))
    assert form_verdict(result([0.0] * 20, "fused"), result([0.0] * 20, "train")) == \
        "identical to the reference in both forms"
    assert "not on the same evaluation inputs" in form_verdict(result([0.1] * 20, "fused"), result([0.1] * 30, "train"))
    rng = np.random.default_rng(0)
    clear = form_verdict(result(list(rng.uniform(1, 2, 40)), "fused"), result(list(rng.uniform(3, 4, 40)), "train"))
    assert "fused hurts less" in clear


def test_a_truncated_jpeg_is_caught_before_the_sweep(tmp_path):
    folder = tmp_path / "cal"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "a.jpg")
    data = (folder / "a.jpg").read_bytes()
    (folder / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(qi.ImageFolderError, match="not a readable JPEG or PNG"):
        qi.check_calibration(folder, 4)


def test_an_int8_result_without_its_evaluation_says_so_and_verify_fails_it(monkeypatch):
    from repnext_bench.core.cases import Case
    from repnext_bench.core.records import Parity, Result
    from repnext_bench.run import case_run, verify

    case = Case("M0", "fused", "onnxruntime", "cpu", "int8", 2, 64, 1, "latency")
    result = Result(case, "ok", precision_effective="int8", parity=Parity(1e-3, 1e-3, 1.0))
    case_run.with_evaluation(result, {"error": "the process died"})
    assert result.parity.inputs == "bound input" and result.parity.images == 2
    monkeypatch.setattr(verify, "run_cases", lambda *args, **kwargs: [result])
    (check,) = verify.backend_checks([case], None, 1.0)
    assert check["ok"] is False and "did not run" in check["error"]
