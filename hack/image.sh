#!/usr/bin/env bash
# Build the runtime image with podman, pulling nothing, and print its reference last.
# Usage: hack/image.sh            (BASE_IMAGE=... to use another base that is already local)
#        VARIANT=kfp hack/image.sh  the image for `tekton-mlops kfp`: the kfp extra added, tag -kfp
# Without a local BASE_IMAGE, Debian bookworm bases (build and runtime) are made once with
# debootstrap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CONTAINERS_CONF=$PWD/hack/containers.conf
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run hack/system-deps.sh --image" >&2; exit 1; }
done
version=$(.venv/bin/python -c "import tekton_mlops; print(tekton_mlops.__version__)")
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
case ${VARIANT:-} in
  "") extras=all; suffix="" ;;
  kfp) extras=all,kfp; suffix=-kfp ;;
  *) echo "VARIANT=${VARIANT}: the variants are kfp (or none)" >&2; exit 2 ;;
esac
image=${IMAGE:-localhost/tekton-mlops-runtime:$version$suffix}
base=${BASE_IMAGE:-localhost/tekton-mlops-base:bookworm}
build=${BUILD_IMAGE:-$base}

if [[ -z ${BASE_IMAGE:-} ]]; then
  build=localhost/tekton-mlops-build:bookworm
  if ! podman image exists "$base" || ! podman image exists "$build"; then
    echo "making $build and $base with debootstrap (about a minute, once)" >&2
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
      "$root" >/dev/null
    # Package caches, docs and iconv charsets: nothing in a Python runtime reads them.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/{doc,man,info,locale}/* "$root"/usr/lib/x86_64-linux-gnu/gconv
    tar -C "$root" -c . | podman import --quiet - "$build" >/dev/null
    # The runtime base: what making a venv and porting Python 2 code need, removed.
    rm -rf "$root"/usr/share/python-wheels "$root"/usr/lib/python3.11/{ensurepip,lib2to3,pydoc_data}
    tar -C "$root" -c . | podman import --quiet - "$base" >/dev/null
  fi
elif ! podman image exists "$base"; then
  echo "$base is not a local image and nothing can be pulled here" >&2
  exit 1
fi

rm -rf .image/wheels && mkdir -p .image/wheels
.venv/bin/pip wheel --quiet --wheel-dir .image/wheels ".[$extras]" >&2
podman --runtime runc build --quiet --network host -f runtime/Containerfile \
  --build-arg "BASE_IMAGE=$base" --build-arg "BUILD_IMAGE=$build" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "EXTRAS=$extras" \
  -t "$image" . >&2
echo "$image"
