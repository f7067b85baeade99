#!/usr/bin/env bash
# ctest's helm.chart: skips (77) when the npm validators are not installed (scripts/install-deps.sh).
set -euo pipefail
node=$1 renderer=$2 chart=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -d $here/validate/node_modules/kubernetes-models ]]; then
  echo "tests/helm/validate/node_modules missing (npm ci there, as scripts/install-deps.sh does)"
  exit 77
fi
exec "$node" "$here/chart_test.js" "$renderer" "$chart" "$work"
