#!/usr/bin/env bash
# Install the system packages the tests (default) or the benchmarks (--bench) need.
# Usage: hack/system-deps.sh [--bench]
# As root it installs what is missing with apt-get/npm; otherwise it only reports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# An OCI registry on 127.0.0.1 for bundle tests; bubblewrap confines each step of the process
# runner to its own mount namespace; busybox runs the ash scripts of alpine/busybox images;
# postgresql is the shared study database of tune-model's distributed tests; chromium is the
# headless browser the dashboard and HTML report tests drive (Playwright never downloads one).
debian_packages=(docker-registry git bubblewrap busybox postgresql chromium)
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

# The model servers `tekton-mlops serve` is measured against, each in a venv of its own under
# .bench/ (never the project's venv: their pins would fight ours). A venv counts as installed
# once its server imports, so an install cut short is redone.
bench_venv() {  # bench_venv NAME MODULE PACKAGE...
  local name=$1 module=$2
  shift 2
  if [[ -x .bench/$name/bin/python ]] && .bench/$name/bin/python -c "import $module" 2>/dev/null; then
    return
  fi
  echo "installing $* into .bench/$name"
  python3.11 -m venv .bench/$name
  .bench/$name/bin/pip install --quiet "$@"
}
if [[ "${1:-}" == "--bench" ]]; then
  bench_venv kserve-venv kserve kserve==0.21.0 onnxruntime numpy
  # Seldon MLServer; benchmarks/mlserver_onnx_server.py is its ONNX model class.
  bench_venv mlserver-venv mlserver mlserver==1.7.1 onnxruntime numpy
  # MLflow's light client, which the runtime's REST tracking client is measured against.
  bench_venv mlflow-skinny-venv mlflow mlflow-skinny==3.17.2
fi
