"""The options more than one command takes, each declared once: its names, its type and its
help. A command gives the default in its signature (``forms: Forms = "fused"``); the
parsing and checking of the value is one function in ``validators``.

Options that take a list where a command sweeps (``--batch 1,8``) are text, and a command that
takes one value checks that it got one."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SWEEPS = "comma-separated where the command sweeps several"

Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of the tables.")]
Output = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Where the command writes (a file; export: a folder). Default: reports/<command>-<UTC "
    "time>.json, e.g. reports/run-20250101-120000.json; report: reports/comparison.<format>.")]
Format = Annotated[str, typer.Option(
    "--format", help="The format of what --output receives: run: repnext (the report contract) or pytest-benchmark "
    "(readable by pytest-benchmark compare); report: html (one self-contained file), md (PNG plots beside it) or "
    "csv; export: onnx, openvino, coreml, tensorrt (comma-separated for several).")]
Markdown = Annotated[Path | None, typer.Option("--markdown", help="Also write the verdicts as Markdown (CI job "
                                                                  "summary).")]

Variants = Annotated[str, typer.Option("--variants", "--variant", "-v", help="Which variants: m0-m5, m0,m3, M4, "
                                       "m0e-m2e or all (profile: exactly one).")]
Forms = Annotated[str, typer.Option("--forms", "--form", "-f", help="Forms, comma-separated: train, official, fused "
                                    "(the deployment form).")]
Backends = Annotated[str, typer.Option("--backend", "-b", help="Backends, comma-separated: torch, onnxruntime, "
                                       "openvino, cuda, tensorrt, coreml (`repnext-bench backends` says which run "
                                       "here).")]
Devices = Annotated[str, typer.Option("--device", "-d", help="Devices, comma-separated (default: each backend's "
                                      "first): cpu; cuda or tensorrt (onnxruntime's GPU providers); all, cpu_only, "
                                      "cpu_and_gpu, cpu_and_ne (coreml compute units).")]
Precision = Annotated[str, typer.Option("--precision", "-p", help=f"fp32, bf16, fp16, int8 (post-training "
                                        "quantization: onnxruntime, openvino, tensorrt, coreml) or auto (the runtime "
                                        f"or the format chooses), {SWEEPS}; what a backend does not run is skipped.")]
Batch = Annotated[str, typer.Option("--batch", help=f"Batch size, {SWEEPS} (e.g. 1,8,32).")]
Resolution = Annotated[str, typer.Option("--resolution", "-r", help=f"Input side in pixels, a positive multiple of "
                                         f"32, {SWEEPS} (e.g. 224,256).")]
Threads = Annotated[str, typer.Option("--threads", "-t", help=f"Threads per case, {SWEEPS} (e.g. 1,2); unset: the "
                                      "usable cores.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random weights and input (gate: of the AB/BA order "
                                   "and the bootstrap).")]

Checkpoint = Annotated[Path | None, typer.Option("--checkpoint", help="Weights for the one selected variant (random "
                                                 "otherwise).")]
CacheDir = Annotated[Path | None, typer.Option("--cache-dir", help="Export cache (default: $REPNEXT_BENCH_CACHE or "
                                               "~/.cache/repnext-bench).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Export afresh and keep nothing.")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset of the export (OpenVINO and TensorRT start from that "
                                    "ONNX too).")]
CoremlFormat = Annotated[str, typer.Option("--coreml-format", help="Core ML model type: mlprogram (iOS 16+) or "
                                           "neuralnetwork (older devices); run takes both: mlprogram,neuralnetwork.")]
CoremlWeights = Annotated[str | None, typer.Option("--coreml-weights", help="Core ML --precision int8: 8-bit "
                                                  "weights by linear quantization (linear, the default) or by "
                                                  "palettization (palettize); run takes both: linear,palettize.")]

Duration = Annotated[float, typer.Option("--duration", help="Time each case at least this many seconds in all "
                                         "(profile: the timed loop without the profiler, before it).")]
Block = Annotated[float, typer.Option("--block", help="Seconds of inferences in one block, the unit of sampling: "
                                      "each round runs one block of every case (gate: of each arm).")]
CaseTimeout = Annotated[float, typer.Option("--case-timeout", help="Stop a case (and record it failed) whose load or "
                                            "any one block (profile: its profile) takes longer than this many "
                                            "seconds.")]

Calibration = Annotated[Path | None, typer.Option(
    "--calibration", help="INT8: a folder of JPEG/PNG images to calibrate on (resized, centre-cropped and normalized "
    "as ImageNet's evaluation); unset: synthetic inputs, said in every INT8 result.")]
CalibrationSize = Annotated[int, typer.Option(
    "--calibration-size", help="INT8: how many calibration images (spread evenly over the folder) or synthetic "
    "inputs.")]
Eval = Annotated[Path | None, typer.Option(
    "--eval", help="A labelled folder in ImageNet's layout (one subfolder per class, with class_index.json or "
    "--class-map): top-1 of each case and of the fp32 train-time model, and INT8 parity on its images. Use with "
    "--checkpoint.")]
EvalSize = Annotated[int | None, typer.Option(
    "--eval-size", help="How many of --eval's images, spread evenly over its classes (default: all).")]
ClassMap = Annotated[Path | None, typer.Option(
    "--class-map", help="--eval's class-index map (JSON: folder name -> index, or Keras' index -> [folder name, "
    "label]).")]
