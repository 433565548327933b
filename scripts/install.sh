#!/usr/bin/env bash
# Install genometracks on a CPU-only machine (no CUDA wheels), plus what the tests need with --test.
#   bash scripts/install.sh          # the package and its dependencies
#   bash scripts/install.sh --test   # + pytest, headless Chromium for the browser test, igv.js
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
  # Debian's Chromium drives the real-browser test; the test skips with a message if this fails.
  if ! command -v chromium >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "install.sh: chromium could not be installed; the browser test will be skipped"
  fi
fi
# igv.js for DIR/igv/index.html comes from the npm registry into the user cache, never into git.
$PY -c "from genometracks.browser.igv import ensure_igv_js; ensure_igv_js()" >/dev/null 2>&1 || echo "install.sh: igv.js not fetched now; export fetches it on first use"
