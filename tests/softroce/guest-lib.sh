#!/bin/sh
# Helpers shared by both guests of the Soft-RoCE bed (busybox sh). Sourced by guest-a.sh and
# guest-b.sh; also run as `sh /opt/guest-lib.sh FUNCTION ARGS...` by the remote-control agent.
# Node A is 192.168.77.1 (node-a, dials), node B is 192.168.77.2 (node-b, accepts).
A_IP=192.168.77.1
B_IP=192.168.77.2
AGENT=$B_IP:9000
ADMIN=http://127.0.0.1:15000

say() { echo "@@BED $(cut -d' ' -f1 /proc/uptime) $*"; }
result() { echo "@@RESULT $1 $2 $3"; }  # case pass|fail detail-without-spaces

# write_config NODE BACKEND: the sidecar config of node-a or node-b. Small rings: the receive area
# is pinned by the RDMA registration (256 streams x 256 KiB = 64 MiB of a 1 GiB guest); the
# benchmark sets BED_RING_BYTES / BED_MAX_STREAMS (fewer, larger rings) and BED_POLL_BUDGET_US.
write_config() {
  node=$1 backend=$2
  if [ "$node" = node-a ]; then me=$A_IP peer=node-b peer_ip=$B_IP; else me=$B_IP peer=node-a peer_ip=$A_IP; fi
  cat > /tmp/$node.yaml <<YAML
node:
  name: $node
admin:
  address: 127.0.0.1:15000
transport:
  backend: $backend
  listen: $me:15008
  ring_bytes: ${BED_RING_BYTES:-262144}
  max_streams: ${BED_MAX_STREAMS:-256}
  connect_timeout_ms: 10000
  keepalive_interval_ms: 2000
  keepalive_timeout_ms: 6000
  poll_budget_us: ${BED_POLL_BUDGET_US:-50}
  peers:
    - name: $peer
      address: $peer_ip:15008
YAML
  if [ "$node" = node-a ]; then
    cat >> /tmp/$node.yaml <<YAML
listeners:
  - {name: echo-out, direction: outbound, address: 127.0.0.1:17001, cluster: echo}
  - {name: sink-out, direction: outbound, address: 127.0.0.1:17002, cluster: sink}
  - {name: kill-out, direction: outbound, address: 127.0.0.1:17003, cluster: kill}
  - {name: redis-out, direction: outbound, address: 127.0.0.1:16379, cluster: redis}
  - {name: discard-out, direction: outbound, address: 127.0.0.1:17004, cluster: discard}
# Stream opens get 10 s (default 1 s): under emulation 200 concurrent opens take seconds.
clusters:
  - {name: echo, connect_timeout_ms: 10000, endpoints: [{node: node-b, address: "$B_IP:7001"}]}
  - {name: sink, connect_timeout_ms: 10000, endpoints: [{node: node-b, address: "$B_IP:7002"}]}
  - {name: kill, connect_timeout_ms: 10000, endpoints: [{node: node-b, address: "$B_IP:7003"}]}
  - {name: redis, connect_timeout_ms: 10000, endpoints: [{node: node-b, address: "$B_IP:6379"}]}
  - {name: discard, connect_timeout_ms: 10000, endpoints: [{node: node-b, address: "$B_IP:7004"}]}
YAML
  else
    cat >> /tmp/$node.yaml <<YAML
listeners:
  - {name: echo-in, direction: inbound, port: 7001}
  - {name: sink-in, direction: inbound, port: 7002}
  - {name: kill-in, direction: inbound, port: 7003}
  - {name: redis-in, direction: inbound, port: 6379}
  - {name: discard-in, direction: inbound, port: 7004}
YAML
  fi
}

stats() { wget -q -O - "$ADMIN/stats" 2>/dev/null; }
# stat_value NAME: a stat of this node's sidecar without the rdmesh. prefix (text stats unquoted)
stat_value() { stats | sed -n "s/^rdmesh\.$1: //p" | tr -d '"'; }
stat_is() { [ "$(stat_value "$1")" = "$2" ]; }
stat_above() { v=$(stat_value "$1"); [ -n "$v" ] && [ "$v" -gt "$2" ]; }

# wait_for SECONDS COMMAND...: readiness check with a deadline (polls, no fixed sleeps).
wait_for() {
  t=$1; shift
  rdmesh-bed-tool retry "$t" sh -c "$*" >/dev/null 2>&1
}

# start_proxy NODE BACKEND: starts the sidecar in the background and waits for /ready.
start_proxy() {
  write_config "$1" "$2"
  rdmesh-proxy -c /tmp/$1.yaml --log-level info >> /tmp/proxy.log 2>&1 &
  echo $! > /tmp/proxy.pid
  wait_for 30 "wget -q -O /dev/null $ADMIN/ready"
}

stop_proxy() {
  [ -f /tmp/proxy.pid ] && kill -9 "$(cat /tmp/proxy.pid)" 2>/dev/null
  rm -f /tmp/proxy.pid
  # the admin port is free once the process is gone
  wait_for 10 "! wget -q -O /dev/null $ADMIN/ready"
}

proxy_pid() { cat /tmp/proxy.pid; }

# start_kill_sink: a sink on 7003 that SIGKILLs this node's proxy after 8 MiB of a connection.
start_kill_sink() {
  rdmesh-bed-tool sink 7003 8388608 "$(proxy_pid)" > /tmp/kill-sink.log 2>&1 &
  wait_for 10 "netstat -ltn | grep -q ':7003 '"
}

# start_link_probe verbs|tcp: node B's side of the node-pair link probe (pair_link_probe serve),
# in the background; port 15009 because this node's sidecar holds the node-agent port 15008.
LINK_PROBE_PORT=15009
start_link_probe() {
  pair_link_probe serve $B_IP:$LINK_PROBE_PORT node-b "$1" > /tmp/link-probe.log 2>&1 &
  wait_for 10 "netstat -ltn | grep -q ':$LINK_PROBE_PORT '"
}

# remove_rxe: this node loses its RDMA device.
remove_rxe() {
  rdma link delete rxe0 && wait_for 10 "! ls /sys/class/infiniband/rxe0"
}

if [ -n "$1" ] && [ "$(basename "$0")" = guest-lib.sh ]; then
  "$@"
fi
