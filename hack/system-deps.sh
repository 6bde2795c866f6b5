#!/usr/bin/env bash
# Install the system packages the tests (default) or the benchmarks (--bench) need.
# Usage: hack/system-deps.sh [--bench]
# As root it installs what is missing with apt-get/npm; otherwise it only reports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

debian_packages=(docker-registry git)   # an OCI registry on 127.0.0.1 for bundle tests
npm_packages=()
if [[ "${1:-}" == "--image" || "${CI:-}" == "true" ]]; then
  # Building the runtime image and running steps in containers, pulling nothing.
  debian_packages+=(podman runc debootstrap uidmap)
fi
if [[ "${1:-}" == "--bench" ]]; then
  debian_packages+=(awscli podman runc debootstrap uidmap skopeo)
  # npm often comes with a Node.js installed outside Debian; use it when it is there.
  command -v npm >/dev/null || debian_packages+=(npm)
  npm_packages+=(s3rver@3.7.1)
fi

missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((${#npm_packages[@]})); then
  mkdir -p .bench
  for package in "${npm_packages[@]}"; do
    if [[ ! -x .bench/node_modules/.bin/${package%@*} ]]; then
      echo "installing npm package $package into .bench/"
      npm install --prefix .bench --silent --no-audit --no-fund "$package" >/dev/null
    fi
  done
fi

if [[ "${1:-}" == "--bench" && ! -x .bench/kserve-venv/bin/python ]]; then
  # KServe's own model server, the peer of `tekton-mlops serve`; kept out of the project's venv.
  echo "installing kserve into .bench/kserve-venv"
  python3.11 -m venv .bench/kserve-venv
  .bench/kserve-venv/bin/pip install --quiet kserve==0.21.0 onnxruntime numpy
fi
