#!/usr/bin/env bash
# Start the local S3 server (moto standalone) on 127.0.0.1 by hand, for trying steps.
# Usage: hack/services.sh [PORT]    (default 5000; Ctrl-C stops it)
# Then: export AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=testing \
#              AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
port=${1:-5000}
[[ -x .venv/bin/python ]] || { echo "run 'make dev' first" >&2; exit 1; }
echo "moto S3 on http://127.0.0.1:${port} (any credentials are accepted)"
exec .venv/bin/python -m moto.server -H 127.0.0.1 -p "$port"
