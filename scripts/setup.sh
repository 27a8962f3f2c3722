#!/usr/bin/env bash
# One-time, idempotent, non-interactive install of every build and test dependency
# from Debian packages. Safe to re-run: apt-get skips what is already installed.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev            # tensors + autograd (1.13)
  libopenblas0-pthread    # BLAS behind libtorch: without it matmuls run ~30x slower
  libopenblas-dev
  nlohmann-json3-dev      # JSON (config.json, safetensors headers, reports)
  libsentencepiece-dev    # SentencePiece tokenizers
  libgtest-dev            # unit tests
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
