#!/usr/bin/env bash
# Installs every build and test dependency of saeflow from Debian's packages. Idempotent and
# non-interactive; does nothing when everything is already there. Needs root (or sudo).
set -euo pipefail
pkgs=(build-essential pkg-config
      libopenblas-dev libzstd-dev libmsgpack-dev libzmq3-dev libcjson-dev libsentencepiece-dev
      zstd python3 python3-numpy python3-sentencepiece libxml2-utils librsvg2-bin valgrind
      chromium    # headless, for tests/pipeline/report-chromium.sh (about a minute from Debian)
      parallel    # GNU parallel: pipelines/parallel.sh (sharded studies)
      slurmctld slurmd slurm-client munge   # tests/pipeline/shard-slurm.sh runs a private Slurm
      iproute2)   # ip netns: tests/pipeline/net-partition.sh
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
