#!/usr/bin/env bash
# rdmesh-install-cni against a node's CNI directories made here: rdmesh-cni is appended last to
# the primary conflist, once however often it runs, kept when the network plugin rewrites its
# file, and removed with the binary on uninstall; a malformed conflist is left untouched.
set -euo pipefail
script=$1
command -v jq >/dev/null || { echo "jq missing"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/net.d"
printf '#!/bin/sh\necho fake rdmesh-cni\n' > "$work/rdmesh-cni"
chmod +x "$work/rdmesh-cni"
echo '{"type":"rdmesh-cni","nodeSocket":"/var/run/rdmesh/node.sock"}' > "$work/entry.json"
bridge='{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","subnet":"10.88.0.0/16"}},{"type":"portmap","capabilities":{"portMappings":true}}]}'
echo "$bridge" > "$work/net.d/10-bridge.conflist"
echo '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"loopback"}]}' > "$work/net.d/99-other.conflist"
export CNI_BIN_DIR=$work/bin CNI_CONF_DIR=$work/net.d RDMESH_CNI_ENTRY=$work/entry.json
export RDMESH_CNI_BINARY=$work/rdmesh-cni
fail() { echo "FAIL: $*"; exit 1; }
types() { jq -c '[.plugins[].type]' "$1"; }

bash "$script" once
[[ $(types "$work/net.d/10-bridge.conflist") == '["bridge","portmap","rdmesh-cni"]' ]] || fail "appended last: $(types "$work/net.d/10-bridge.conflist")"
[[ $(types "$work/net.d/99-other.conflist") == '["loopback"]' ]] || fail "only the primary conflist is changed"
cmp -s "$work/rdmesh-cni" "$work/bin/rdmesh-cni" && [[ -x $work/bin/rdmesh-cni ]] || fail "binary installed"
[[ $(jq -r .name "$work/net.d/10-bridge.conflist") == k8s-pod-network ]] || fail "network name kept"
bash "$script" once
[[ $(types "$work/net.d/10-bridge.conflist") == '["bridge","portmap","rdmesh-cni"]' ]] || fail "idempotent"

# The network plugin rewrites its file while the installer watches: rdmesh-cni comes back.
bash "$script" & pid=$!
echo "$bridge" > "$work/net.d/10-bridge.conflist.tmp" && mv "$work/net.d/10-bridge.conflist.tmp" "$work/net.d/10-bridge.conflist"
for _ in $(seq 100); do
  [[ $(types "$work/net.d/10-bridge.conflist") == '["bridge","portmap","rdmesh-cni"]' ]] && break
  sleep 0.1
done
[[ $(types "$work/net.d/10-bridge.conflist") == '["bridge","portmap","rdmesh-cni"]' ]] || fail "re-applied after a rewrite"
# SIGTERM (the DaemonSet pod deleted): entry and binary gone, exit 0.
kill -TERM "$pid"
wait "$pid" || fail "exit status $? after SIGTERM"
[[ $(types "$work/net.d/10-bridge.conflist") == '["bridge","portmap"]' ]] || fail "removed on uninstall"
[[ ! -e $work/bin/rdmesh-cni ]] || fail "binary removed"

# A conflist jq cannot read is left as it is.
echo '{"plugins": [' > "$work/net.d/10-bridge.conflist"
bash "$script" once 2>/dev/null || true
[[ $(cat "$work/net.d/10-bridge.conflist") == '{"plugins": [' ]] || fail "malformed conflist untouched"
echo "install-cni: all checks passed"
