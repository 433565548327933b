#!/usr/bin/env bash
# Install genometracks on a CPU-only machine (no CUDA wheels), plus what the tests need with --test.
#   bash scripts/install.sh          # the package and its dependencies
#   bash scripts/install.sh --test   # + pytest, headless Chromium, IGV desktop + Xvfb, GenomeTools, igv.js
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# torch first, pinned: the local CPU build. A looser requirement would pull several GB of CUDA packages.
if ! $PY -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  $PY -m pip install -q torch==2.13.0
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
$PY -m pip install -q -e ".${extras}"

if [ "${1:-}" = "--test" ]; then
  # Debian's Chromium drives the real-browser tests, IGV desktop under Xvfb the IGV client test;
  # the tests skip with a message if this fails (and .ci/run fails on such a skip).
  missing=""
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  command -v igv >/dev/null 2>&1 || missing="$missing igv"
  command -v xvfb-run >/dev/null 2>&1 || missing="$missing xvfb"
  command -v gt >/dev/null 2>&1 || missing="$missing genometools"  # GenomeTools' gff3validator checks our GFF3
  if [ -n "$missing" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
      || echo "install.sh: could not install$missing; the tests that need them will be skipped"
  fi
fi
# the compiled attention kernel: built once here (about 20 s with g++), so the first model call does not wait for it
$PY -c "from genometracks.model.kernel import build_now; print(build_now())" 2>&1 | tail -1
# igv.js for DIR/igv/index.html comes from the npm registry into the user cache, never into git.
$PY -c "from genometracks.browser.igv import ensure_igv_js; ensure_igv_js()" >/dev/null 2>&1 || echo "install.sh: igv.js not fetched now; export fetches it on first use"
