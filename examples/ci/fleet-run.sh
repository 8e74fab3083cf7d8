#!/usr/bin/env bash
# One machine's part of a hardware comparison: run the sweep and keep its report under a name
# that says which machine (runner kind) it came from. Run it on each machine, gather the
# reports in one folder, then merge them with fleet-merge.sh.
#
# usage: fleet-run.sh LABEL [repnext-bench run options...]
#   e.g. fleet-run.sh linux-arm64 --variants m0-m5 --backend onnxruntime,openvino
#
# environment: OUT_DIR, where the report goes (default: fleet), as OUT_DIR/LABEL.json.
# exit code: that of repnext-bench run (1 when a case failed; its report is still written).
set -euo pipefail

if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  echo "usage: $0 LABEL [repnext-bench run options...]" >&2
  exit 2
fi
label=$1
shift
if [[ ! "$label" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "$0: LABEL '$label' must use letters, digits, '.', '_' and '-' only (it names a file)" >&2
  exit 2
fi
out_dir=${OUT_DIR:-fleet}
mkdir -p "$out_dir"
repnext-bench run --output "$out_dir/$label.json" --quiet "$@"
