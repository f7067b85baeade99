#!/usr/bin/env bash
# Capture benchmark (root): what transparent capture costs, side by side with no capture.
#
#   bash bench/capture.sh            # ROUNDS=5 COUNT=10000 REDIS_N=100000 by default
#   QUICK=1 bash bench/capture.sh    # smoke run
#
# 1. connect() cost, socket+connect+close, median of COUNT per round (bench/connect_cost.cc):
#      no_hooks          app outside the hooked cgroup, to a local non-loopback address
#      hooks_not_pod     app in the hooked cgroup, its netns not a captured pod
#      hooks_excluded    app in a captured pod, to an excluded port (every check runs, no capture)
#      explicit_15001    app outside the hooked cgroup, straight to 127.0.0.1:15001
#      hooks_captured    app in a captured pod, to 10.99.0.1:9090 -> rewritten to 127.0.0.1:15001
#      preload_skipped   LD_PRELOAD shim, excluded port
#      preload_captured  LD_PRELOAD shim, captured (bind + registration datagram + connect)
#    Ratios: hooks_* and preload_skipped against no_hooks; *_captured against explicit_15001.
# 2. redis-benchmark (GET/SET, 50 clients) from a pod on node-a to redis on node-b through both
#    sidecars (tcp backend): to the service IP (captured) vs. to the sidecar's explicit outbound
#    listener 127.0.0.1:16379.
# Noise: the variants run interleaved (A B ... then ... B A, alternating per round), and every
# ratio is taken per round between variants that ran back to back, then summarised as median
# and min-max over the rounds (bench/paired_ratios.py), with each variant's own spread and the
# load average: on a shared machine the spread says how far to trust a ratio. Raw rows
# (group mode round value) are kept in $RESULTS if set.
# Uses the binaries in $RDMESH_BUILD [build] (configure with -DRDMESH_BUILD_BENCH=ON; not a
# sanitizer build). Everything it creates is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${RDMESH_BUILD:-$ROOT/build}
[[ $B == /* ]] || B=$ROOT/$B
ROUNDS=${ROUNDS:-7}
COUNT=${COUNT:-10000}
REDIS_N=${REDIS_N:-100000}
if [[ ${QUICK:-0} == 1 ]]; then ROUNDS=2 COUNT=2000 REDIS_N=20000; fi
[[ $(id -u) -eq 0 ]] || { echo "capture.sh: run as root" >&2; exit 1; }
if grep -q 'RDMESH_SANITIZE:STRING=.\+' "$B/CMakeCache.txt"; then
  echo "capture.sh: $B is a sanitizer build" >&2; exit 1
fi
ninja -C "$B" -j2 rdmesh-proxy rdmesh-node rdmesh-preload connect_cost >/dev/null
NODE=$B/node/rdmesh-node PROXY=$B/proxy/rdmesh-proxy
COST=$B/bench/connect_cost PRELOAD=$B/cni-init/preload/librdmesh-preload.so

TAG=rdmb$$
CGROOT=$( [[ -f /sys/fs/cgroup/unified/cgroup.procs ]] && echo /sys/fs/cgroup/unified || echo /sys/fs/cgroup)
CG=$CGROOT/$TAG PIN=/sys/fs/bpf/$TAG WORK=$(mktemp -d /tmp/$TAG.XXXX)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [[ -f $CG/cgroup.kill ]] && echo 1 >"$CG/cgroup.kill"  # the sidecar started through run_in
  wait 2>/dev/null
  sleep 0.2
  "$NODE" --uninstall --cgroup "$CG" --bpf-pin-dir "$PIN" --state-file "$WORK/pods.json" >/dev/null
  for ns in ${TAG}p ${TAG}a ${TAG}b; do ip netns del $ns 2>/dev/null; done
  for d in "$CG"/*/ "$CG" "$CGROOT/${TAG}n"; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# in_pod CGROUP NETNS [uid] -- argv: join the cgroup, then only the netns (keeps /sys visible).
run_in() {
  local cg=$1 ns=$2; shift 2
  sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" nsenter --net=/run/netns/"$ns" "$@"
}
node_req() { python3 - "$WORK/node.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); s.send(sys.argv[2].encode())
r = s.recv(65536).decode(); print(r); sys.exit(0 if '"ok":true' in r else 1)
PY
}
RAW=$WORK/raw.tsv
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }  # group mode round value
# interleaved ROUND MODE... -> the modes in order on odd rounds, reversed on even ones.
interleaved() { local r=$1; shift; if ((r % 2)); then echo "$@"; else tr ' ' '\n' <<<"$*" | tac | tr '\n' ' '; fi; }
summary() { python3 "$ROOT/bench/paired_ratios.py" "$@" <"$RAW"; }
echo "capture.sh: $ROUNDS rounds; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$CG/pod" "$CG/other"
"$NODE" --node-name bench --socket "$WORK/node.sock" --state-file "$WORK/pods.json" \
  --cgroup "$CG" --bpf-pin-dir "$PIN" >"$WORK/node.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -S $WORK/node.sock ]] && break; sleep 0.05; done

# ---------------------------------------------------------------- 1. connect() cost
ip netns add ${TAG}p
ip -n ${TAG}p link set lo up
ip -n ${TAG}p addr add 10.99.0.1/32 dev lo  # a local, non-loopback destination
NOHOOKS=$CGROOT/${TAG}n  # a sibling of the hooked cgroup, same depth: the no-hooks baseline
mkdir -p "$NOHOOKS"
cost() {  # mode -> median_us
  local mode=$1 out
  case $mode in
    no_hooks) out=$(run_in "$NOHOOKS" ${TAG}p "$COST" --target 10.99.0.1:8080 --listen 10.99.0.1:8080 --count "$COUNT") ;;
    hooks_not_pod) out=$(run_in "$CG/other" ${TAG}p "$COST" --target 10.99.0.1:8080 --listen 10.99.0.1:8080 --count "$COUNT") ;;
    hooks_excluded) out=$(run_in "$CG/pod" ${TAG}p "$COST" --target 10.99.0.1:8080 --listen 10.99.0.1:8080 --count "$COUNT") ;;
    explicit_15001) out=$(run_in "$NOHOOKS" ${TAG}p "$COST" --target 127.0.0.1:15001 --listen 127.0.0.1:15001 --count "$COUNT") ;;
    hooks_captured) out=$(run_in "$CG/pod" ${TAG}p "$COST" --target 10.99.0.1:9090 --listen 127.0.0.1:15001 --count "$COUNT") ;;
    preload_skipped) out=$(run_in "$NOHOOKS" ${TAG}p env LD_PRELOAD="$PRELOAD" RDMESH_EXCLUDE_OUTBOUND_PORTS=8080 "$COST" --target 10.99.0.1:8080 --listen 10.99.0.1:8080 --count "$COUNT") ;;
    preload_captured) out=$(run_in "$NOHOOKS" ${TAG}p env LD_PRELOAD="$PRELOAD" "$COST" --target 10.99.0.1:9090 --listen 127.0.0.1:15001 --preload-socket @rdmesh-preload --count "$COUNT") ;;
  esac
  awk '{print $2}' <<<"$out"
}
# hooks_not_pod is measured before the netns becomes a pod (group "before"), with its own
# no_hooks baseline; everything else after (group "pod").
MODES_BEFORE="no_hooks hooks_not_pod"
MODES_AFTER="no_hooks hooks_excluded explicit_15001 hooks_captured preload_skipped preload_captured"
for r in $(seq "$ROUNDS"); do
  for m in $(interleaved "$r" $MODES_BEFORE); do record before "$m" "$r" "$(cost "$m")"; done
done
node_req "{\"v\":1,\"op\":\"pod_add\",\"container_id\":\"bench\",\"netns\":\"/run/netns/${TAG}p\",\"ips\":[\"10.99.0.1\"],\"interface\":\"lo\",\"exclude_outbound_ports\":[8080]}" >/dev/null
for r in $(seq "$ROUNDS"); do
  for m in $(interleaved "$r" $MODES_AFTER); do record pod "$m" "$r" "$(cost "$m")"; done
done
echo "== connect() cost: socket+connect+close, median of $COUNT per round, $ROUNDS rounds (us)"
summary --unit us --target 0.05 \
  --pair "hooks, not a pod / no hooks:before:hooks_not_pod:no_hooks:lower" \
  --pair "hooks, excluded port / no hooks:pod:hooks_excluded:no_hooks:lower" \
  --pair "preload, skipped / no hooks:pod:preload_skipped:no_hooks:lower" \
  --pair "eBPF captured / explicit 15001:pod:hooks_captured:explicit_15001:lower" \
  --pair "preload captured / explicit 15001:pod:preload_captured:explicit_15001:lower"

# ---------------------------------------------------------------- 2. redis-benchmark
ip netns add ${TAG}a; ip netns add ${TAG}b
ip link add ${TAG}va netns ${TAG}a type veth peer name ${TAG}vb netns ${TAG}b
ip -n ${TAG}a addr add 10.98.0.1/24 dev ${TAG}va; ip -n ${TAG}b addr add 10.98.0.2/24 dev ${TAG}vb
for n in a b; do ip -n ${TAG}$n link set lo up; ip -n ${TAG}$n link set ${TAG}v$n up; done
mkdir -p "$CG/poda"
node_req "{\"v\":1,\"op\":\"pod_add\",\"container_id\":\"poda\",\"netns\":\"/run/netns/${TAG}a\",\"ips\":[\"10.98.0.1\"],\"interface\":\"${TAG}va\"}" >/dev/null
cat >"$WORK/a.yaml" <<YAML
node: {name: node-a}
transport: {backend: tcp, listen: "10.98.0.1:15008", peers: [{name: node-b, address: "10.98.0.2:15008"}]}
listeners:
  - {name: capture, direction: capture, address_v6: none, preload_socket: none}
  - {name: redis-out, direction: outbound, address: "127.0.0.1:16379", cluster: redis}
clusters:
  - name: redis
    service_addresses: ["10.96.0.11:6379"]
    endpoints: [{node: node-b, address: "10.98.0.2:6379"}]
YAML
cat >"$WORK/b.yaml" <<YAML
node: {name: node-b}
transport: {backend: tcp, listen: "10.98.0.2:15008", peers: [{name: node-a, address: "10.98.0.1:15008"}]}
listeners:
  - {name: redis-in, direction: inbound, port: 6379}
YAML
chmod 755 "$WORK"; chmod 644 "$WORK"/*.yaml
ip netns exec ${TAG}b redis-server --port 6379 --bind 0.0.0.0 --save '' --appendonly no --protected-mode no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
ip netns exec ${TAG}b "$PROXY" -c "$WORK/b.yaml" >"$WORK/b.log" 2>&1 &
PIDS+=($!)
run_in "$CG/poda" ${TAG}a setpriv --reuid=1337 --regid=1337 --clear-groups -- "$PROXY" -c "$WORK/a.yaml" >"$WORK/a.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  ip netns exec ${TAG}a redis-cli -h 10.96.0.11 -p 6379 PING 2>/dev/null | grep -q PONG && break; sleep 0.05
done
rb() {  # target -> "set_rps get_rps"
  local host=$1 port=$2
  run_in "$CG/poda" ${TAG}a redis-benchmark -h "$host" -p "$port" -n "$REDIS_N" -c 50 -t set,get -q 2>/dev/null |
    tr '\r' '\n' | awk '/^SET:/ {s=$2} /^GET:/ {g=$2} END {print s, g}'
}
for r in $(seq "$ROUNDS"); do
  for variant in $(interleaved "$r" explicit captured); do
    if [[ $variant == explicit ]]; then read -r s g < <(rb 127.0.0.1 16379); else read -r s g < <(rb 10.96.0.11 6379); fi
    record redis "${variant}_set" "$r" "$s"
    record redis "${variant}_get" "$r" "$g"
  done
done
echo
echo "== redis-benchmark -c 50 -n $REDIS_N through both sidecars (tcp backend), $ROUNDS rounds (req/s)"
grep -P '^redis\t' "$RAW" >"$WORK/redis.tsv"
python3 "$ROOT/bench/paired_ratios.py" --unit req/s --target 0.05 \
  --pair "SET captured / explicit:redis:captured_set:explicit_set:higher" \
  --pair "GET captured / explicit:redis:captured_get:explicit_get:higher" <"$WORK/redis.tsv"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -z ${RESULTS:-} ]] || cp "$RAW" "$RESULTS"
echo "agent: $(node_req '{"v":1,"op":"stats"}' | tr ',' '\n' | grep -E 'captured|original_dst' | tr '\n' ' ')"
