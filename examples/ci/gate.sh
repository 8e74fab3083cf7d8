#!/usr/bin/env bash
# Gate a change with repnext-bench: the baseline installed from one source tree, the candidate
# from another, each in its own virtual environment, timed against each other by
# `repnext-bench gate` (paired, interleaved, restarted arms). Works in any CI on Linux or macOS.
#
# usage: gate.sh BASELINE_SRC CANDIDATE_SRC [repnext-bench gate options...]
#   e.g. git worktree add ../base origin/main && gate.sh ../base . --variants m0-m2
#
# environment (all optional):
#   PYTHON              interpreter the environments are made with (default: python3)
#   WORK_DIR            where the environments and the gate record go (default: .repnext-gate)
#   TORCH_SPEC          installed first in each environment (default: torch==2.13.0; empty: none)
#   PIP_ARGS            extra arguments for every pip install (e.g. --no-build-isolation)
#   SHARED_SITE         a site-packages folder both environments may import from, to reuse
#                       packages already installed there (e.g. a cached torch) instead of
#                       installing them twice
#   SUMMARY             Markdown file the verdicts are appended to (default: $GITHUB_STEP_SUMMARY
#                       when set, else WORK_DIR/summary.md)
#   ALLOW_INCONCLUSIVE  1: an inconclusive gate (too noisy to decide) exits 0 instead of 3
#
# exit code: that of repnext-bench gate: 0 pass or improved, 1 regression, 3 inconclusive,
# 2 bad usage (or a source tree that does not install).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BASELINE_SRC CANDIDATE_SRC [repnext-bench gate options...]" >&2
  exit 2
fi
# a tree that is not there, or does not install, is bad input (2), never a regression (1)
baseline_src=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: no source tree at $1" >&2; exit 2; }
candidate_src=$(cd "$2" 2>/dev/null && pwd) || { echo "$0: no source tree at $2" >&2; exit 2; }
shift 2
python=${PYTHON:-python3}
work=${WORK_DIR:-.repnext-gate}
mkdir -p "$work"
work=$(cd "$work" && pwd)
torch_spec=${TORCH_SPEC-torch==2.13.0}
pip_args=()
read -r -a pip_args <<< "${PIP_ARGS:-}"

# make_env NAME SRC: a fresh environment with SRC installed; prints its bin folder. (Each step
# says "|| return 1": set -e does not act inside a function whose caller tests it.)
make_env() {
  local name=$1 src=$2 bin site
  rm -rf "${work:?}/$name"
  "$python" -m venv "$work/$name" || return 1
  bin="$work/$name/bin"
  [ -d "$bin" ] || bin="$work/$name/Scripts"  # Windows layout (Git Bash)
  if [ -n "${SHARED_SITE:-}" ]; then
    site=$("$bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
    echo "$SHARED_SITE" > "$site/_repnext_shared_site.pth" || return 1
  fi
  if [ -n "$torch_spec" ]; then
    "$bin/python" -m pip install --quiet --progress-bar off ${pip_args[@]+"${pip_args[@]}"} "$torch_spec" >&2 || return 1
  fi
  "$bin/python" -m pip install --quiet --progress-bar off ${pip_args[@]+"${pip_args[@]}"} "$src" >&2 || return 1
  echo "$bin"
}

echo "building the baseline environment from $baseline_src" >&2
baseline_bin=$(make_env baseline "$baseline_src") || { echo "$0: $baseline_src does not install" >&2; exit 2; }
echo "building the candidate environment from $candidate_src" >&2
candidate_bin=$(make_env candidate "$candidate_src") || { echo "$0: $candidate_src does not install" >&2; exit 2; }

summary=${SUMMARY:-${GITHUB_STEP_SUMMARY:-$work/summary.md}}
status=0
"$candidate_bin/repnext-bench" gate \
  --baseline-python "$baseline_bin/python" --candidate-python "$candidate_bin/python" \
  --output "$work/gate.json" --markdown "$work/verdicts.md" "$@" || status=$?
if [ -f "$work/verdicts.md" ]; then
  cat "$work/verdicts.md" >> "$summary"
fi
if [ "$status" -eq 3 ] && [ "${ALLOW_INCONCLUSIVE:-0}" = "1" ]; then
  echo "inconclusive: allowed by ALLOW_INCONCLUSIVE=1" >&2
  status=0
fi
exit "$status"
