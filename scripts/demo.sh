#!/usr/bin/env bash
# rdmesh demo. On a fresh Debian 12 machine, as root:
#
#   bash scripts/demo.sh
#
# Builds rdmesh-proxy (Release, build/), makes two emulated nodes — network namespaces
# rdmesh-demo-a (10.77.0.1) and rdmesh-demo-b (10.77.0.2) joined by a veth pair — starts
# redis-server in node B, and runs redis-benchmark in node A three ways: directly over the veth,
# and through a pair of rdmesh sidecars with the shm and the tcp fabric backend:
#
#   node A: redis-benchmark -> 127.0.0.1:16379 [rdmesh-proxy node-a] ==session==>
#   node B:                    [rdmesh-proxy node-b] -> 127.0.0.1:6379 redis-server
#
# It prints a table (requests/s and median latency) and each session's counters from /stats,
# which prove the bytes went through the mesh. Everything it creates is removed on exit.
# Without root it runs on loopback addresses (127.0.0.1 / 127.0.0.2) instead of namespaces.
# Knobs: DEMO_N [100000] requests per test, DEMO_C [50] clients, DEMO_BACKENDS ["shm tcp"],
#        RDMESH_BUILD [build] build directory, DEMO_SKIP_DEPS=1 skips install-deps.sh,
#        DEMO_SKIP_BUILD=1 uses the existing binary, DEMO_KEEP=1 keeps configs and logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${RDMESH_BUILD:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
PROXY=$BUILD_DIR/proxy/rdmesh-proxy
N=${DEMO_N:-100000}
C=${DEMO_C:-50}
BACKENDS=${DEMO_BACKENDS:-"shm tcp"}
NS_A=rdmesh-demo-a
NS_B=rdmesh-demo-b
REDIS_PORT=6379
OUT_PORT=16379
T_START=$(date +%s)

log() { printf '[demo %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $(id -u) -eq 0 ]]; then
  USE_NETNS=1
  IP_A=10.77.0.1 IP_B=10.77.0.2
  ADMIN_A=127.0.0.1:15000 ADMIN_B=127.0.0.1:15000   # loopback is per namespace
else
  USE_NETNS=0
  IP_A=127.0.0.1 IP_B=127.0.0.2
  ADMIN_A=127.0.0.1:15000 ADMIN_B=127.0.0.2:15000
fi

# ------------------------------------------------------------------ cleanup (every exit)
PIDS=()
CREATED_NS=()
WORK=
OK=0
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for ns in "${CREATED_NS[@]}"; do
    # anything still running inside a namespace this script made is ours: never leave it behind
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [[ -n $WORK && -d $WORK ]]; then
    if ((OK && !${DEMO_KEEP:-0})); then rm -rf "$WORK"; else log "logs and configs kept in $WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# command prefixes that run something in node A / node B
if ((USE_NETNS)); then EXEC_A=(ip netns exec "$NS_A") EXEC_B=(ip netns exec "$NS_B"); else EXEC_A=() EXEC_B=(); fi
in_a() { "${EXEC_A[@]}" "$@"; }
in_b() { "${EXEC_B[@]}" "$@"; }
# spawn a|b LOGNAME CMD... : background process in node A/B, remembered for cleanup. No shell
# function in between: `ip netns exec` execs CMD, so $! is CMD's own PID (signals reach it).
spawn() {
  local side=$1 name=$2
  shift 2
  if [[ $side == a ]]; then
    "${EXEC_A[@]}" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  else
    "${EXEC_B[@]}" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
stop_pid() { # TERM, wait up to 10 s, KILL
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
# http_get a|b URL -> body on stdout (fails unless 200)
http_get() { "in_$1" curl -sf --max-time 5 --retry 2 --retry-delay 1 "$2"; }
http_try() { "in_$1" curl -sf --max-time 2 "$2"; }   # one attempt, for polling

# ------------------------------------------------------------------ dependencies and build
if ((USE_NETNS)); then
  [[ ${DEMO_SKIP_DEPS:-0} == 1 ]] || bash scripts/install-deps.sh
else
  log "not root: no network namespaces; running both nodes on loopback ($IP_A and $IP_B) instead"
  for c in cmake ninja redis-server redis-benchmark redis-cli curl; do
    command -v "$c" >/dev/null || die "missing $c (as root, scripts/install-deps.sh installs it)"
  done
fi
WORK=$(mktemp -d /tmp/rdmesh-demo.XXXXXX)
chmod 755 "$WORK"
if [[ ${DEMO_SKIP_BUILD:-0} == 1 ]]; then
  log "DEMO_SKIP_BUILD=1: using $PROXY as it is"
else
  log "building rdmesh-proxy (Release, $BUILD_DIR; log in $WORK/build.log)"
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cfg=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DRDMESH_BUILD_BENCH=OFF -DRDMESH_BUILD_TESTS=OFF)
  else
    cfg=(-DCMAKE_BUILD_TYPE=Release)
  fi
  if ! { cmake -S . -B "$BUILD_DIR" "${cfg[@]}" && ninja -C "$BUILD_DIR" -j2 rdmesh-proxy; } >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    die "build failed (full log: $WORK/build.log)"
  fi
fi
[[ -x $PROXY ]] || die "$PROXY was not built"

# ------------------------------------------------------------------ nodes
if ((USE_NETNS)); then
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
      [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] || die "netns $ns exists with processes in it (another demo running?)"
      log "removing stale empty netns $ns"
      ip netns del "$ns"
    fi
  done
  for ns in "$NS_A" "$NS_B"; do ip netns add "$ns"; CREATED_NS+=("$ns"); done
  # veth ends are created directly inside the namespaces (no name clash with the host's links)
  ip link add rdmd-a netns "$NS_A" type veth peer name rdmd-b netns "$NS_B"
  ip -n "$NS_A" addr add "$IP_A/24" dev rdmd-a
  ip -n "$NS_B" addr add "$IP_B/24" dev rdmd-b
  for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_A" link set rdmd-a up
  ip -n "$NS_B" link set rdmd-b up
  log "nodes: $NS_A ($IP_A) <-veth-> $NS_B ($IP_B)"
fi

spawn b redis-server redis-server --port "$REDIS_PORT" --bind 127.0.0.1 "$IP_B" --save '' --appendonly no \
  --protected-mode no --daemonize no --dir "$WORK" --logfile ""
REDIS_PID=$LAST_PID
for _ in $(seq 100); do
  [[ $(in_b redis-cli -h "$IP_B" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
  kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis-server.log" >&2; die "redis-server exited"; }
  sleep 0.1
done
[[ $(in_b redis-cli -h "$IP_B" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || die "redis-server not answering"
log "redis-server up in node B"

# ------------------------------------------------------------------ benchmark
declare -A R_SET R_GET R_P16 R_P50
csv_field() { # csv test column
  tr -d '"\r' <<<"$1" | awk -F, -v t="$2" -v col="$3" '
    NR==1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 == t && (col in c) { print $(c[col]); found = 1 }
    END { if (!found) print "n/a" }'
}
bench() { # mode host port
  local mode=$1 host=$2 port=$3 out p16
  log "redis-benchmark ($mode): $host:$port -t set,get -n $N -c $C, then -t get -P 16"
  out=$(timeout -k 5 180 "${EXEC_A[@]}" redis-benchmark -h "$host" -p "$port" -t set,get -n "$N" -c "$C" --csv) ||
    die "redis-benchmark ($mode) failed"
  p16=$(timeout -k 5 180 "${EXEC_A[@]}" redis-benchmark -h "$host" -p "$port" -t get -n "$N" -c "$C" -P 16 --csv) ||
    die "redis-benchmark -P 16 ($mode) failed"
  R_SET[$mode]=$(csv_field "$out" SET rps)
  R_GET[$mode]=$(csv_field "$out" GET rps)
  R_P50[$mode]=$(csv_field "$out" GET p50_latency_ms)
  R_P16[$mode]=$(csv_field "$p16" GET rps)
}
MODES=(direct)
bench direct "$IP_B" "$REDIS_PORT"

write_config() { # side backend -> yaml on stdout
  local side=$1 backend=$2 self peer self_ip peer_ip admin listen peer_addr
  if [[ $side == a ]]; then self=node-a peer=node-b self_ip=$IP_A peer_ip=$IP_B admin=$ADMIN_A
  else self=node-b peer=node-a self_ip=$IP_B peer_ip=$IP_A admin=$ADMIN_B; fi
  if [[ $backend == shm ]]; then
    listen=$WORK/$self.sock peer_addr=$WORK/$peer.sock
  else
    listen=$self_ip:15008 peer_addr=$peer_ip:15008
  fi
  cat <<YAML
# rdmesh demo: $self, $backend backend
node: {name: $self, identity: "spiffe://cluster.local/ns/default/sa/$self", workers: 1}
admin: {address: $admin}
transport:
  backend: $backend
  listen: $listen
  peers:
    - {name: $peer, address: $peer_addr}
drain_timeout_ms: 1000
YAML
  if [[ $side == a ]]; then
    cat <<YAML
listeners:
  - {name: redis-out, direction: outbound, address: 127.0.0.1:$OUT_PORT, cluster: redis}
clusters:
  - name: redis
    lb_policy: round_robin
    endpoints:
      - {node: node-b, address: $IP_B:$REDIS_PORT}
YAML
  else
    cat <<YAML
listeners:
  - {name: redis-in, direction: inbound, port: $REDIS_PORT, target: 127.0.0.1:$REDIS_PORT}
YAML
  fi
}
# In loopback mode node B's redis is only on 127.0.0.2 for the "direct" path; its sidecar targets
# 127.0.0.1:6379, where redis also listens (--bind 127.0.0.1 $IP_B).

declare -A SESSION_STATS
for backend in $BACKENDS; do
  mode=rdmesh-$backend
  for side in a b; do
    write_config "$side" "$backend" >"$WORK/$backend-node-$side.yaml"
    "$PROXY" --check -c "$WORK/$backend-node-$side.yaml" >"$WORK/$backend-node-$side.check" 2>&1 ||
      { cat "$WORK/$backend-node-$side.check" >&2; die "config check failed ($backend, node $side)"; }
  done
  spawn b "$backend-node-b" "$PROXY" -c "$WORK/$backend-node-b.yaml" --log-level info
  PID_B=$LAST_PID
  spawn a "$backend-node-a" "$PROXY" -c "$WORK/$backend-node-a.yaml" --log-level info
  PID_A=$LAST_PID
  ready=0
  for _ in $(seq 300); do
    kill -0 "$PID_A" 2>/dev/null || { cat "$WORK/$backend-node-a.log" >&2; die "node-a sidecar exited"; }
    kill -0 "$PID_B" 2>/dev/null || { cat "$WORK/$backend-node-b.log" >&2; die "node-b sidecar exited"; }
    if http_try a "http://$ADMIN_A/ready" >/dev/null 2>&1 && http_try b "http://$ADMIN_B/ready" >/dev/null 2>&1 &&
      http_try a "http://$ADMIN_A/stats" 2>/dev/null | grep -Eq '^rdmesh\.session\.node-b\.state: "?established"?$'; then
      ready=1
      break
    fi
    sleep 0.1
  done
  ((ready)) || { tail -n 30 "$WORK/$backend-node-a.log" "$WORK/$backend-node-b.log" >&2; die "$backend: sidecars not ready / session not established in 30 s"; }
  fabric=$(http_get a "http://$ADMIN_A/stats" | sed -n 's/^rdmesh\.session\.node-b\.fabric: "\{0,1\}\([a-z]*\)"\{0,1\}$/\1/p')
  [[ $fabric == "$backend" ]] || die "$backend: node-a reports fabric '$fabric' for its session (a stale sidecar?)"
  log "$backend: both sidecars ready, session node-a -> node-b established over $fabric"
  MODES+=("$mode")
  bench "$mode" 127.0.0.1 "$OUT_PORT"
  http_get a "http://$ADMIN_A/stats" >"$WORK/$backend-node-a.stats" || log "warning: node-a /stats did not answer"
  SESSION_STATS[$backend]=$(grep -E '^rdmesh\.(session\.node-b\.(fabric|state|bytes_sent|bytes_received|connects_total|streams_opened_total|streams_active)|listener\.redis-out\.downstream_cx_total|cluster\.redis\.upstream_cx_total):' \
    "$WORK/$backend-node-a.stats" || true)
  stop_pid "$PID_A"
  stop_pid "$PID_B"
done

# ------------------------------------------------------------------ report
echo
if ((USE_NETNS)); then
  echo "redis-benchmark in node A ($NS_A) -> redis-server in node B ($NS_B); -n $N -c $C; $(nproc) CPUs"
else
  echo "redis-benchmark -> redis-server on loopback (no namespaces: not root); -n $N -c $C; $(nproc) CPUs"
fi
echo "direct = client -> $IP_B:$REDIS_PORT; rdmesh-* = client -> 127.0.0.1:$OUT_PORT -> sidecar A -> session -> sidecar B -> redis"
echo
printf '%-12s | %12s | %12s | %14s | %12s\n' mode "SET rps" "GET rps" "GET -P16 rps" "GET p50 ms"
printf '%-12s-+-%12s-+-%12s-+-%14s-+-%12s\n' ------------ ------------ ------------ -------------- ------------
for m in "${MODES[@]}"; do
  printf '%-12s | %12s | %12s | %14s | %12s\n' "$m" "${R_SET[$m]}" "${R_GET[$m]}" "${R_P16[$m]}" "${R_P50[$m]}"
done
for backend in $BACKENDS; do
  echo
  echo "node-a /stats after the $backend run (the session carried the benchmark's bytes):"
  while IFS= read -r line; do echo "  $line"; done <<<"${SESSION_STATS[$backend]}"
done
echo
log "done in $(($(date +%s) - T_START)) s"
OK=1
