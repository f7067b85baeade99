# shellcheck shell=bash
# rdmesh modes for the peer harness ../shared/bench/mesh-bench.sh (sourced by it via MB_PLUGINS).
#
#   MB_PLUGINS=$PWD/bench/mesh-bench-rdmesh.sh MODES="direct haproxy nginx rdmesh_tcp rdmesh_shm" \
#     ../shared/bench/mesh-bench.sh          (or simply: bench/run.sh)
#
# Modes: rdmesh_tcp and rdmesh_shm, one sidecar per node, both fabric backends.
#   node A (NS_A): one outbound listener per service on 127.0.0.1:OUT_PORT[svc] -> cluster svc ->
#                  endpoint {node: node-b, address: IP_B:BACKEND_PORT[svc]}
#   node B (NS_B): one inbound listener per service, port BACKEND_PORT[svc] ->
#                  target 127.0.0.1:BACKEND_PORT[svc]
#   session:       tcp: IP_A:15008 <-> IP_B:15008 over the veth; shm: unix sockets in $WORK
#                  (node-a dials node-b).
# Knobs (environment):
#   RDMESH_BUILD [build]          build directory holding proxy/rdmesh-proxy (relative: to the repo)
#   RDMESH_WORKERS [1]            node.workers of each sidecar
#   RDMESH_LOG_LEVEL [warn]       sidecar log level (logs in the harness work dir)
#   RDMESH_TRANSPORT_EXTRA [""]   extra transport keys, e.g. "poll_budget_us: 0; ring_bytes: 1048576"
# The harness provides: sidecar_spawn, log, kill_tree, EXEC_A/EXEC_B, NS_A NS_B IP_A IP_B WORK SERVICES
# START_TIMEOUT and the maps OUT_PORT IN_PORT BACKEND_PORT.

RDMESH_ROOT=${RDMESH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

_rdmesh_proxy_bin() {
  local b=${RDMESH_BUILD:-build}
  [[ $b == /* ]] || b=$RDMESH_ROOT/$b
  echo "$b/proxy/rdmesh-proxy"
}

# _rdmesh_config a|b tcp|shm -> YAML on stdout
_rdmesh_config() {
  local side=$1 backend=$2 self peer listen peer_addr s extra kv
  if [[ $side == a ]]; then self=node-a peer=node-b; else self=node-b peer=node-a; fi
  if [[ $backend == shm ]]; then
    listen=$WORK/rdmesh-$self.sock
    peer_addr=$WORK/rdmesh-$peer.sock
  elif [[ $side == a ]]; then
    listen=$IP_A:15008 peer_addr=$IP_B:15008
  else
    listen=$IP_B:15008 peer_addr=$IP_A:15008
  fi
  cat <<EOF
# mesh-bench mode rdmesh_$backend, $self
node: {name: $self, identity: "spiffe://cluster.local/ns/bench/sa/$self", workers: ${RDMESH_WORKERS:-1}}
admin: {address: 127.0.0.1:15000}
drain_timeout_ms: 1000
transport:
  backend: $backend
  listen: $listen
EOF
  extra=${RDMESH_TRANSPORT_EXTRA:-}
  if [[ -n $extra ]]; then
    IFS=';' read -ra kv <<<"$extra"
    for s in "${kv[@]}"; do
      s=${s#"${s%%[![:space:]]*}"}
      [[ -n $s ]] && printf '  %s\n' "$s"
    done
  fi
  printf '  peers:\n    - {name: %s, address: %s}\n' "$peer" "$peer_addr"
  echo "listeners:"
  for s in "${SERVICES[@]}"; do
    if [[ $side == a ]]; then
      printf '  - {name: %s-out, direction: outbound, address: 127.0.0.1:%s, cluster: %s}\n' "$s" "${OUT_PORT[$s]}" "$s"
    else
      printf '  - {name: %s-in, direction: inbound, port: %s, target: 127.0.0.1:%s}\n' "$s" "${BACKEND_PORT[$s]}" "${BACKEND_PORT[$s]}"
    fi
  done
  if [[ $side == a ]]; then
    echo "clusters:"
    for s in "${SERVICES[@]}"; do
      printf '  - name: %s\n    lb_policy: round_robin\n    endpoints:\n      - {node: node-b, address: %s:%s}\n' \
        "$s" "$IP_B" "${BACKEND_PORT[$s]}"
    done
  fi
}

# GET http://127.0.0.1:15000<path> inside node A or B (bash /dev/tcp: curl is not a harness dependency)
_rdmesh_admin_get() { # a|b path
  local -n _rdmesh_exec="EXEC_${1^^}"   # the harness's command prefix for that node
  # shellcheck disable=SC2016  # $0 expands in the inner shell
  timeout -k 1 3 "${_rdmesh_exec[@]}" bash -c 'exec 3<>/dev/tcp/127.0.0.1/15000 || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$0" >&3
    cat <&3' "$2" 2>/dev/null | tr -d '\r'
}

_rdmesh_start() { # tcp|shm
  local backend=$1 bin side i
  bin=$(_rdmesh_proxy_bin)
  [[ -x $bin ]] || { log "rdmesh: $bin not found; build it (bench/run.sh does) or set RDMESH_BUILD"; return 1; }
  for side in a b; do
    _rdmesh_config "$side" "$backend" >"$WORK/rdmesh-$backend-$side.yaml"
    if ! "$bin" --check -c "$WORK/rdmesh-$backend-$side.yaml" >"$WORK/rdmesh-$backend-$side.check" 2>&1; then
      log "rdmesh_$backend: config for node $side rejected: $(head -c 300 "$WORK/rdmesh-$backend-$side.check")"
      return 1
    fi
  done
  rm -f "$WORK"/rdmesh-node-*.sock
  # node-b first: it waits for node-a's dial
  sidecar_spawn b "rdmesh-$backend-b" "$bin" -c "$WORK/rdmesh-$backend-b.yaml" --log-level "${RDMESH_LOG_LEVEL:-warn}"
  sidecar_spawn a "rdmesh-$backend-a" "$bin" -c "$WORK/rdmesh-$backend-a.yaml" --log-level "${RDMESH_LOG_LEVEL:-warn}"
  # The harness waits for the OUT ports only; traffic also needs the session: wait for it here.
  for ((i = 0; i < ${START_TIMEOUT:-15} * 10; i++)); do
    if _rdmesh_admin_get a /stats | grep -Eq '^rdmesh\.session\.node-b\.state: "?established"?$' &&
      [[ $(_rdmesh_admin_get b /ready | head -n 1) == *" 200"* ]]; then
      return 0
    fi
    sleep 0.1
  done
  log "rdmesh_$backend: session node-a -> node-b not established after ${START_TIMEOUT:-15}s (logs: $WORK/rdmesh-$backend-*.log)"
  return 1
}

_rdmesh_stop() { # tcp|shm
  local backend=$1 stats
  # Proof of path: the session's counters after the run (kept in the work dir, summary logged).
  stats=$(_rdmesh_admin_get a /stats)
  printf '%s\n' "$stats" >"$WORK/rdmesh-$backend-a.stats"
  _rdmesh_admin_get b /stats >"$WORK/rdmesh-$backend-b.stats"
  log "  rdmesh_$backend session node-a->node-b: $(grep -E '^rdmesh\.session\.node-b\.(fabric|bytes_sent|bytes_received|connects_total):' <<<"$stats" |
    sed 's/^rdmesh\.session\.node-b\.//' | tr '\n' ' ')"
  kill_tree "${MODE_PIDS[@]}"
  rm -f "$WORK"/rdmesh-node-*.sock
}

mode_rdmesh_tcp_start() { _rdmesh_start tcp; }
mode_rdmesh_tcp_stop() { _rdmesh_stop tcp; }
mode_rdmesh_shm_start() { _rdmesh_start shm; }
mode_rdmesh_shm_stop() { _rdmesh_stop shm; }
