#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the quality gates
# (ruff check, ruff format --check, mypy on app/) and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the tests start their own throwaway PostgreSQL clusters and Redis servers,
# and run promtool/amtool against the shipped rules.
packages=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || packages+=(postgresql)
command -v pg_dump > /dev/null || packages+=(postgresql-client)
command -v redis-server > /dev/null || packages+=(redis-server)
command -v promtool > /dev/null || packages+=(prometheus)
command -v amtool > /dev/null || packages+=(prometheus-alertmanager)
command -v zstd > /dev/null || packages+=(zstd)
command -v openssl > /dev/null || packages+=(openssl)
if ((${#packages[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing: ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" > /dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"

if [[ -f scripts/fetch-helm.sh ]]; then
    bash scripts/fetch-helm.sh
    export PATH="$PWD/.tools/bin:$PATH"
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy app
.venv/bin/pytest "$@"
