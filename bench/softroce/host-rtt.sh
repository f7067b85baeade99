#!/bin/bash
# bench/softroce/host-rtt.sh [BUILD_DIR]: the bed benchmark's 64-byte round trip on the host
# instead of in emulated guests, to tell what mesh mode itself costs from what emulation costs.
# Two network namespaces joined by veth (10.77.0.1 node-a, 10.77.0.2 node-b; made and removed
# here), an echo server in node-b, and through the sidecars: standalone `tcp` backend, then mesh
# mode (rdmesh-node in each namespace on a tcp link, sidecars attached), each with the sidecars
# spinning 50 us and not at all. Prints one line per configuration and the host's load average.
# Root only. Knobs: RTT_COUNT [2000].
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
TOOL=$BUILD/tests/softroce/rdmesh-bed-tool
COUNT=${RTT_COUNT:-2000}
WORK=$(mktemp -d /tmp/rdmesh-host-rtt.XXXXXX)
NA=rdmesh-rtt-a NB=rdmesh-rtt-b
pids=()
stop_all() { for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done; pids=(); }
cleanup() { stop_all; ip netns del $NA 2> /dev/null || true; ip netns del $NB 2> /dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
in_ns() { local ns=$1 log=$2; shift 2; ip netns exec "$ns" "$@" > "$WORK/$log.log" 2>&1 & pids+=($!); disown $!; }
ready() { # NS URL-or-socket: readiness through the bed tool's retry
  ip netns exec "$1" "$TOOL" retry 10 sh -c "$2" > /dev/null ||
    { echo "not ready: $2" >&2; tail -n 20 "$WORK"/*.log >&2; exit 1; }
}

ip netns add $NA && ip netns add $NB
ip link add rtt-a type veth peer name rtt-b
ip link set rtt-a netns $NA && ip link set rtt-b netns $NB
ip -n $NA addr add 10.77.0.1/24 dev rtt-a && ip -n $NB addr add 10.77.0.2/24 dev rtt-b
for ns in $NA $NB; do ip -n $ns link set lo up; done
ip -n $NA link set rtt-a up && ip -n $NB link set rtt-b up

node_config() { # NAME ME PEER PEER_IP
  cat > "$WORK/node-$1.yaml" << YAML
node: {name: $1}
socket: $WORK/$1.sock
state_file: $WORK/$1-pods.json
capture: {bpf: false}
log_level: warn
fabric:
  listen: $2:15008
  rdma: false
  verify_caller_netns: false   # no pod_add here: one sidecar per namespace
  peers: [{name: $3, address: "$4:15008"}]
YAML
}
sidecar_config() { # NAME ME MODE SPIN
  local peer=node-b peer_ip=10.77.0.2
  [[ $1 == node-b ]] && peer=node-a peer_ip=10.77.0.1
  {
    echo "node: {name: $1}"
    echo "admin: {address: 127.0.0.1:15000}"
    if [[ $3 == mesh ]]; then
      echo "node_agent: {socket: $WORK/$1.sock, pod_ips: [$2]}"
      echo "transport: {poll_budget_us: $4}"
    else
      echo "transport: {backend: tcp, listen: \"$2:15008\", ring_bytes: 262144, max_streams: 256,"
      echo "  poll_budget_us: $4, peers: [{name: $peer, address: \"$peer_ip:15008\"}]}"
    fi
    if [[ $1 == node-a ]]; then
      echo "listeners: [{name: echo, direction: outbound, address: 127.0.0.1:17001, cluster: echo}]"
      echo "clusters: [{name: echo, endpoints: [{node: node-b, address: \"10.77.0.2:7001\"}]}]"
    else
      echo "listeners: [{name: echo, direction: inbound, port: 7001}]"
    fi
  } > "$WORK/$1.yaml"
}

echo "host load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in standalone mesh; do
  for spin in 50 0; do
    stop_all
    in_ns $NB echo "$TOOL" serve 7001
    if [[ $mode == mesh ]]; then
      node_config node-a 10.77.0.1 node-b 10.77.0.2
      node_config node-b 10.77.0.2 node-a 10.77.0.1
      in_ns $NB node-b-agent "$BUILD/node/rdmesh-node" -c "$WORK/node-node-b.yaml"
      in_ns $NA node-a-agent "$BUILD/node/rdmesh-node" -c "$WORK/node-node-a.yaml"
      ready $NA "test -S $WORK/node-a.sock" && ready $NB "test -S $WORK/node-b.sock"
    fi
    sidecar_config node-b 10.77.0.2 $mode $spin
    sidecar_config node-a 10.77.0.1 $mode $spin
    in_ns $NB node-b "$BUILD/proxy/rdmesh-proxy" -c "$WORK/node-b.yaml" --log-level warn
    ready $NB "curl -sf http://127.0.0.1:15000/ready"
    [[ $mode == mesh ]] && ready $NB "curl -s http://127.0.0.1:15000/stats | grep -q 'mesh.listener.up: 1'"
    in_ns $NA node-a "$BUILD/proxy/rdmesh-proxy" -c "$WORK/node-a.yaml" --log-level warn
    ready $NA "curl -sf http://127.0.0.1:15000/ready"
    ready $NA "$TOOL echo 127.0.0.1:17001 4096 1"  # the session is up
    echo "$mode spin=${spin}us: $(ip netns exec $NA "$TOOL" rtt 127.0.0.1:17001 "$COUNT" 64)"
  done
done
echo "host load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
