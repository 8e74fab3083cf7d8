#!/usr/bin/env bash
# Merge the reports that fleet-run.sh wrote on several machines into one HTML comparison,
# each machine named by its report's file name (the LABEL given to fleet-run.sh).
#
# usage: fleet-merge.sh REPORTS_DIR [OUTPUT.html]
#   REPORTS_DIR is searched recursively for *.json (CI artifact downloads often nest folders).
# exit code: that of repnext-bench report (2 when there is nothing to merge).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 REPORTS_DIR [OUTPUT.html]" >&2
  exit 2
fi
dir=$1
out=${2:-$dir/comparison.html}
reports=()
labels=()
while IFS= read -r file; do
  reports+=("$file")
  name=$(basename "$file" .json)
  labels+=(--label "$name")
done < <(find "$dir" -name '*.json' -type f | sort)
if [ ${#reports[@]} -eq 0 ]; then
  echo "$0: no *.json report under $dir" >&2
  exit 2
fi
repnext-bench report "${reports[@]}" "${labels[@]}" --format html --output "$out"
