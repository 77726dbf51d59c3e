#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages this project needs, only those that are missing.
# Works as root (no sudo needed) and as a user with sudo; never asks a question.
set -euo pipefail

packages=(
  cmake ninja-build g++            # build
  libfmt-dev libopenblas-dev       # autograd: formatting, CBLAS for matmul
  zlib1g-dev nlohmann-json3-dev    # nn: .gz datasets, safetensors headers
  libcli11-dev libstb-dev          # the two_layer_net example: arguments, weights.png
  libgtest-dev graphviz            # tests (graphviz renders the exported graph)
  dataset-fashion-mnist            # the example's data, in /usr/share/datasets/fashion-mnist
)
packages+=("$@")  # extra packages from the caller (e.g. .ci/run)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
