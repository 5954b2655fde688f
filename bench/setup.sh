#!/usr/bin/env bash
# Installs what the benchmark needs beside the project: its Python extra (httpx, py-spy)
# and PostGraphile 4 with its plugins under bench/.postgraphile (git-ignored).
# Usage: bench/setup.sh [python]   (default: the python on PATH; e.g. /tmp/venv/bin/python)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python}"

"$python" -m pip install --quiet -e "$here/..[bench]"
npm install --prefix "$here/.postgraphile" --no-audit --no-fund --loglevel=error \
    postgraphile@4 \
    @graphile-contrib/pg-simplify-inflector@6 \
    postgraphile-plugin-connection-filter@2
node -e "require('$here/.postgraphile/node_modules/postgraphile/package.json').version" >/dev/null
echo "bench: ready (PostGraphile $(node -p "require('$here/.postgraphile/node_modules/postgraphile/package.json').version"))"
