#!/usr/bin/env bash
# Installs what tinyseek needs on Debian 12 or newer, then its npm dependencies (which builds the
# libtorch addon). Safe to re-run: apt runs only when a package is missing.
#   bash scripts/setup.sh           system packages + npm ci
#   bash scripts/setup.sh --bench   also the benchmark peers (Debian's python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the headless browser the web page tests drive (playwright-core)
# libgloo-dev: the headers of Gloo, the CPU transport of libtorch's c10d (distributed training)
pkgs=(g++ make python3 libtorch-dev libgloo-dev libopenblas0-pthread chromium)
if [[ "${1:-}" == "--bench" ]]; then pkgs+=(python3-torch); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo) to apt-get install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # libopenblas0-pthread in the same transaction makes it libtorch's BLAS (not the reference BLAS).
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || { echo "setup: Node.js 20.6 or newer is required (node not found)" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=6)?0:1)' \
  || { echo "setup: Node.js 20.6 or newer is required (found $(node --version))" >&2; exit 1; }

npm ci --no-audit --no-fund
