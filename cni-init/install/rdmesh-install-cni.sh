#!/usr/bin/env bash
# rdmesh-install-cni: the install-cni container of the rdmesh-node DaemonSet (helm/rdmesh).
# Copies rdmesh-cni into the node's CNI bin dir and appends rdmesh-cni's entry ($RDMESH_CNI_ENTRY,
# JSON) as the last plugin of the node's primary conflist (the lexically first *.conflist, the
# one the runtime uses); re-applies it when the network plugin rewrites that file; on SIGTERM
# (DaemonSet pod deleted, e.g. helm uninstall) takes the entry and the binary out again.
#   env: CNI_BIN_DIR, CNI_CONF_DIR, RDMESH_CNI_ENTRY, RDMESH_CNI_BINARY (default: next to us)
set -euo pipefail
BIN_DIR=${CNI_BIN_DIR:?}
CONF_DIR=${CNI_CONF_DIR:?}
ENTRY=${RDMESH_CNI_ENTRY:?}
BINARY=${RDMESH_CNI_BINARY:-$(dirname "$0")/rdmesh-cni}
log() { printf '[rdmesh-install-cni] %s\n' "$*" >&2; }

primary() { find "$CONF_DIR" -maxdepth 1 -name '*.conflist' -type f | LC_ALL=C sort | head -n1; }

# Rewrites $1 with jq program $2 atomically (same directory, then rename).
rewrite() {
  local file=$1 program=$2 tmp
  tmp=$(mktemp "$CONF_DIR/.rdmesh.XXXXXX")
  if jq --slurpfile entry "$ENTRY" "$program" "$file" > "$tmp"; then
    chmod 0644 "$tmp" && mv -f "$tmp" "$file"
  else
    rm -f "$tmp"
    log "$file: not a conflist jq can read; left untouched"
    return 1
  fi
}

install_entry() {
  install -m 0755 "$BINARY" "$BIN_DIR/.rdmesh-cni.new" && mv -f "$BIN_DIR/.rdmesh-cni.new" "$BIN_DIR/rdmesh-cni"
  local conf; conf=$(primary)
  [[ -n $conf ]] || { log "no *.conflist in $CONF_DIR yet; waiting for the network plugin"; return 0; }
  if jq -e '[.plugins[]? | select(.type == "rdmesh-cni")] | length == 0' "$conf" > /dev/null; then
    rewrite "$conf" '.plugins += $entry' && log "rdmesh-cni added to $conf"
  fi
}

remove_entry() {
  local conf
  for conf in "$CONF_DIR"/*.conflist; do
    [[ -f $conf ]] || continue
    if jq -e '[.plugins[]? | select(.type == "rdmesh-cni")] | length > 0' "$conf" > /dev/null 2>&1; then
      rewrite "$conf" '.plugins |= map(select(.type != "rdmesh-cni"))' && log "rdmesh-cni removed from $conf"
    fi
  done
  rm -f "$BIN_DIR/rdmesh-cni"
}

if [[ ${1:-} == uninstall ]]; then remove_entry; exit 0; fi
trap 'remove_entry; exit 0' TERM INT
install_entry
[[ ${1:-} == once ]] && exit 0
# Keep the entry there: network plugins rewrite their conflist on their own restarts.
while true; do
  sleep 5 & wait $!
  install_entry || true
done
