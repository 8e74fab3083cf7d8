#!/usr/bin/env bash
# The GPU check: repnext-bench's NVIDIA paths in one call of a few minutes, for a self-hosted
# GPU runner or a GPU machine lent for a short while. From a source checkout it needs only
# torch (a CUDA build), onnxruntime, typer, rich, numpy, psutil, py-cpuinfo, matplotlib,
# pillow, onnx, pytest and pytest-benchmark; tensorrt and onnxruntime-gpu are used where
# installed. It runs, each step with a time limit, and writes into OUT_DIR:
#   env.json, backends.txt        the machine and what each backend can use
#   pytest-gpu.txt, .xml          pytest -m gpu (the tests that need a CUDA device)
#   verify-*.json, .txt           verify on cuda (and tensorrt, onnxruntime's GPU providers)
#   run-cuda*.json, .txt          a short sweep on cuda, fp32/fp16/bf16, without and with --cuda-graphs
#   report.md                     the sweeps as one hardware report
#   summary.md                    each step: its exit code, its seconds, its files
#
# usage: gpu-check.sh OUT_DIR
#
# environment (all optional):
#   PYTHON      interpreter (default: python3); the checkout this script is in goes first on PYTHONPATH
#   VARIANTS    the variants verified and swept (default: m0,m4)
#   RESOLUTION  input side in pixels (default: 224)
#   BUDGET      seconds of rounds per sweep (default: 30)
#   DEADLINE    seconds for the whole check; a step that would start later is left out (default: 270)
#   STEP_LIMIT  seconds one step may take before it is stopped (default: 150)
#   REHEARSE    1: go on without a CUDA device (every GPU case comes back unavailable): a
#               rehearsal of the steps and their files on any machine
#
# exit code: 0 every step passed; 1 a step failed, was stopped or left out; 2 no CUDA device
# (one line saying why), or bad usage.
set -uo pipefail

if [ $# -ne 1 ] || [[ "$1" == -* ]]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
variants=${VARIANTS:-m0,m4}
resolution=${RESOLUTION:-224}
budget=${BUDGET:-30}
deadline=${DEADLINE:-270}
step_limit=${STEP_LIMIT:-150}
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export COLUMNS=${COLUMNS:-160}
started=$SECONDS

problem=$("$python" -c 'from repnext_bench.system.capabilities import cuda_problem; print(cuda_problem() or "")' 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
  echo "$0: repnext_bench does not import with $python: $(printf '%s\n' "$problem" | tail -n 1)" >&2
  exit 2
fi
if [ -n "$problem" ] && [ "${REHEARSE:-0}" != "1" ]; then
  echo "$0: no CUDA device here: $problem (REHEARSE=1 runs the steps anyway)" >&2
  exit 2
fi
mkdir -p "$out" || { echo "$0: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
summary="$out/summary.md"
{
  echo "# GPU check"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ); CUDA: ${problem:-available}; variants $variants at ${resolution}px"
  echo
  echo "| step | exit | seconds | files |"
  echo "|---|---|---|---|"
} > "$summary"
worst=0

# step NAME FILES COMMAND...: run COMMAND with its output in OUT_DIR/NAME.txt, within the step
# limit and what is left of the deadline, and add its line to the summary
step() {
  local name=$1 files=$2 left code began
  shift 2
  left=$((deadline - (SECONDS - started)))
  if [ "$left" -lt 15 ]; then
    echo "| $name | left out: the ${deadline} s deadline | 0 | |" >> "$summary"
    echo "$name: left out (the ${deadline} s deadline)" >&2
    worst=1
    return
  fi
  [ "$left" -lt "$step_limit" ] || left=$step_limit
  echo "$name ..." >&2
  began=$SECONDS
  (cd "$root" && timeout --kill-after=10 "$left" "$@") > "$out/$name.txt" 2>&1
  code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || code="stopped after ${left} s"
  echo "| $name | $code | $((SECONDS - began)) | $files |" >> "$summary"
  echo "$name: exit $code in $((SECONDS - began)) s" >&2
  [ "$code" = 0 ] || worst=1
}

# verify_on NAME ARGS...: verify's JSON into OUT_DIR/NAME.json (its log in NAME.txt)
verify_on() {
  local name=$1
  shift
  step "$name" "$name.json" bash -c '"$0" -m repnext_bench verify "$@" --json > "'"$out/$name.json"'"' \
    "$python" -v "$variants" -r "$resolution" --cache-dir "$out/cache" "$@"
}

has() { "$python" -c "$1" > /dev/null 2>&1; }

step env "env.json" bash -c '"$0" -m repnext_bench env --json > "'"$out/env.json"'"' "$python"
step backends "backends.txt" "$python" -m repnext_bench backends
if [ -d "$root/tests" ]; then
  step pytest-gpu "pytest-gpu.txt, pytest-gpu.xml" "$python" -m pytest -m gpu -rs -p no:cacheprovider \
    --junitxml "$out/pytest-gpu.xml" "$root/tests"
else
  echo "| pytest-gpu | left out: no tests/ beside this script | 0 | |" >> "$summary"
fi
verify_on verify-cuda -b cuda -p fp32,fp16,bf16
if has "import tensorrt"; then
  verify_on verify-tensorrt -b tensorrt -p fp32,fp16
fi
if has "import onnxruntime, sys; sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())"; then
  verify_on verify-onnxruntime-gpu -b onnxruntime -d cuda,tensorrt -p fp32
fi
sweep=(run -v "$variants" -f train,fused -b cuda -p fp32,fp16,bf16 -r "$resolution" --budget "$budget"
       --max-wall $(( step_limit > 60 ? step_limit - 30 : step_limit / 2 + 1 )) --cache-dir "$out/cache")
step run-cuda "run-cuda.json" "$python" -m repnext_bench "${sweep[@]}" -o "$out/run-cuda.json"
step run-cuda-graphs "run-cuda-graphs.json" "$python" -m repnext_bench "${sweep[@]}" --cuda-graphs -o "$out/run-cuda-graphs.json"
# what every GPU case came to: a case that was unavailable or failed fails the check (where a
# rehearsal expects them unavailable)
count_statuses='
import collections, json, os, sys

def verdict(check):
    if check["ok"] is not None:
        return "ok" if check["ok"] else "failed"
    return "unavailable" if (check.get("error") or "").startswith("unavailable") else "skipped"

rehearse, paths = sys.argv[1] == "1", sys.argv[2:]
bad = finished = 0
for path in paths:
    data = json.load(open(path))
    statuses = [r["status"] for r in data.get("results", [])] + [verdict(c) for c in data.get("checks", [])]
    counts = collections.Counter(statuses)
    finished += counts["ok"] if "results" in data else 0
    bad += sum(n for status, n in counts.items() if status not in ("ok", "skipped"))
    print(os.path.basename(path) + ": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
print(f"finished={finished}")
sys.exit(0 if rehearse or not bad else 1)
'
reports=()
for name in run-cuda run-cuda-graphs; do
  [ -f "$out/$name.json" ] && reports+=("$out/$name.json")
done
results=("${reports[@]}")
for path in "$out"/verify-*.json; do
  [ -s "$path" ] && results+=("$path")
done
if [ ${#results[@]} -gt 0 ]; then
  step statuses "statuses.txt" "$python" -c "$count_statuses" "${REHEARSE:-0}" "${results[@]}"
fi
if [ ${#reports[@]} -gt 0 ] && grep -q "finished=[1-9]" "$out/statuses.txt" 2>/dev/null; then
  step report "report.md" "$python" -m repnext_bench report "${reports[@]}" --format md -o "$out/report.md"
else
  echo "| report | left out: no finished GPU case | 0 | |" >> "$summary"
  [ "${REHEARSE:-0}" = "1" ] || worst=1
fi
{
  echo
  echo "$((SECONDS - started)) s in all; exit $worst"
  if [ -f "$out/statuses.txt" ]; then
    echo
    echo "Cases by status:"
    echo
    sed 's/^/    /' "$out/statuses.txt"
  fi
} >> "$summary"
cat "$summary"
exit "$worst"
