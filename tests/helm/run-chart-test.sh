#!/usr/bin/env bash
# ctest's helm.chart: skips (77) when the npm validators are not installed (scripts/install-deps.sh).
set -euo pipefail
node=$1 renderer=$2 chart=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -d $here/validate/node_modules/kubernetes-models ]]; then
  echo "tests/helm/validate/node_modules missing (npm ci there, as scripts/install-deps.sh does)"
  exit 77
fi
"$node" "$here/chart_test.js" "$renderer" "$chart" "$work"

# What the chart rendered works with the real rdmesh-xds: it starts with the chart's CA and
# injection.yaml, and the API server's side of the handshake (the caBundle the chart wrote)
# verifies the webhook, which injects the chart's sidecar image.
xds=${5:-}
[[ -n $xds ]] || exit 0
log=$work/xds.log
"$xds" --listen-ip 127.0.0.1 --port 0 --plaintext-port 0 --service-dns rdmesh-xds.rdmesh-system.svc \
  --ca-cert "$work/ca.crt" --ca-key "$work/ca.key" --webhook-port 0 --webhook-listen-ip 127.0.0.1 \
  --injection-config "$work/injection.yaml" > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=
for _ in $(seq 200); do
  port=$(sed -n 's/.*injection webhook listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [[ -n $port ]] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "FAIL: rdmesh-xds exited"; exit 1; }
  sleep 0.05
done
[[ -n $port ]] || { cat "$log"; echo "FAIL: webhook did not come up"; exit 1; }
reply=$(curl -sS --cacert "$work/caBundle.pem" --resolve "rdmesh-xds.rdmesh-system.svc:$port:127.0.0.1" \
  -H 'Content-Type: application/json' --data-binary @"$here/../fixtures/admission/pod-basic.json" \
  "https://rdmesh-xds.rdmesh-system.svc:$port/inject")
patch=$(printf '%s' "$reply" | "$node" -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>{const r=JSON.parse(d).response;process.stdout.write(Buffer.from(r.patch,"base64").toString())})')
[[ $patch == *'"image":"ghcr.io/rdmesh/rdmesh-proxy:0.1.0"'* ]] || { echo "FAIL: patch: $patch"; exit 1; }
echo "rdmesh-xds with the chart's CA and injection.yaml: webhook verified through caBundle, sidecar injected"
