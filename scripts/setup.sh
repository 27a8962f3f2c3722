#!/usr/bin/env bash
# One-time, idempotent, non-interactive install of every build and test dependency:
# Debian packages, then (optional) the pinned node-llama-cpp the llama.cpp interop tests use.
# Safe to re-run: apt-get skips what is already installed, npm what matches the lockfile.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # tensors + autograd (1.13)
  libopenblas0-pthread    # BLAS behind libtorch: without it matmuls run ~30x slower
  libopenblas-dev
  nlohmann-json3-dev      # JSON (config.json, safetensors headers, reports)
  libsentencepiece-dev    # SentencePiece tokenizers
  libgtest-dev            # unit tests
  libgloo-dev             # headers of the gloo backend libtorch links (data-parallel tuning, common/dist)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "setup: all dependencies present"

# A current llama.cpp for the interop tests: node-llama-cpp's prebuilt CPU binaries, pinned
# in scripts/llama_node/package-lock.json and installed into scripts/llama_node/node_modules
# (ignored by git). Optional: without Node >= 20, npm or the registry, setup still succeeds
# and the tests that need it skip with a message. Re-running is a no-op once the installed
# tree matches the lockfile (the stamp is a copy of the lockfile npm ci installed).
install_llama_node() {
  local dir stamp
  dir="$(cd "$(dirname "$0")" && pwd)/llama_node"
  stamp="$dir/node_modules/.signround-installed-lock.json"
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "setup: node-llama-cpp skipped (its pinned CPU binaries are for Linux x86-64)"; return 0
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup: node-llama-cpp skipped (node/npm not found; the llama.cpp interop tests will skip)"; return 0
  fi
  if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "setup: node-llama-cpp skipped (needs Node >= 20, found $(node --version))"; return 0
  fi
  if cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "setup: node-llama-cpp present"; return 0
  fi
  # --ignore-scripts: its postinstall would try to build llama.cpp from source when the
  # prebuilt binaries do not load; the tests would rather skip.
  if (cd "$dir" && timeout 900 npm ci --omit=optional --ignore-scripts --no-audit --no-fund \
        --fetch-retries=1 --fetch-timeout=60000 --loglevel=error); then
    cp "$dir/package-lock.json" "$stamp"
    echo "setup: node-llama-cpp installed in $dir/node_modules"
  else
    rm -rf "$dir/node_modules"
    echo "setup: node-llama-cpp not installed (npm ci failed: registry unreachable?); the llama.cpp interop tests will skip"
  fi
}
install_llama_node
