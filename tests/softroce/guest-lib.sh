#!/bin/sh
# Helpers shared by both guests of the Soft-RoCE bed (busybox sh). Sourced by guest-a.sh and
# guest-b.sh; also run as `sh /opt/guest-lib.sh FUNCTION ARGS...` by the remote-control agent.
# Node A is 192.168.77.1 (node-a, dials), node B is 192.168.77.2 (node-b, accepts).
A_IP=192.168.77.1
B_IP=192.168.77.2
AGENT=$B_IP:9000
ADMIN=http://127.0.0.1:15000
NODE_SOCK=/var/run/rdmesh/node.sock
MESH_B=$B_IP@node-b  # node A's mesh session to node B's sidecar ("<pod ip>@<node>")

say() { echo "@@BED $(cut -d' ' -f1 /proc/uptime) $*"; }
result() { echo "@@RESULT $1 $2 $3"; }  # case pass|fail detail-without-spaces

# write_config NODE BACKEND: the standalone sidecar config of node-a or node-b. Small rings: the
# receive area is pinned by the RDMA registration (256 streams x 256 KiB = 64 MiB of a 1 GiB
# guest); the benchmark sets BED_RING_BYTES / BED_MAX_STREAMS (fewer, larger rings) and
# BED_POLL_BUDGET_US.
write_config() {
  node=$1 backend=$2
  node_addresses "$node"
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
  write_apps "$node"
}

# write_mesh_config NODE: the sidecar of node-a or node-b in mesh mode, attached to this guest's
# rdmesh-node; its pod IP is the guest's address. The session geometry is the mesh default
# (256 streams x 256 KiB, 4 MiB staging) unless the benchmark sets BED_RING_BYTES /
# BED_MAX_STREAMS.
write_mesh_config() {
  node=$1
  node_addresses "$node"
  cat > /tmp/$node.yaml <<YAML
node:
  name: $node
admin:
  address: 127.0.0.1:15000
node_agent:
  socket: $NODE_SOCK
  pod_ips: [$me]
${BED_RING_BYTES:+  ring_bytes: $BED_RING_BYTES}
${BED_MAX_STREAMS:+  max_streams: $BED_MAX_STREAMS}
${BED_IDLE_MS:+  idle_session_timeout_ms: $BED_IDLE_MS}
transport:
  connect_timeout_ms: 10000
  keepalive_interval_ms: 2000
  keepalive_timeout_ms: 6000
  poll_budget_us: ${BED_POLL_BUDGET_US:-50}
YAML
  write_apps "$node"
}

node_addresses() {
  if [ "$1" = node-a ]; then me=$A_IP peer=node-b peer_ip=$B_IP; else me=$B_IP peer=node-a peer_ip=$A_IP; fi
}

# write_apps NODE: the listeners and clusters both modes share (node A dials, node B serves).
write_apps() {
  if [ "$1" = node-a ]; then
    cat >> /tmp/$1.yaml <<YAML
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
    cat >> /tmp/$1.yaml <<YAML
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

# start_kill_sink [PIDFILE]: a sink on 7003 that SIGKILLs this node's proxy (or the process in
# PIDFILE, e.g. /tmp/node.pid: the node agent) after 8 MiB of a connection.
start_kill_sink() {
  pkill_sink
  rdmesh-bed-tool sink 7003 8388608 "$(cat "${1:-/tmp/proxy.pid}")" > /tmp/kill-sink.log 2>&1 &
  echo $! > /tmp/kill-sink.pid
  wait_for 10 "netstat -ltn | grep -q ':7003 '"
}
# The previous kill sink, if any, frees port 7003.
pkill_sink() {
  [ -f /tmp/kill-sink.pid ] && kill "$(cat /tmp/kill-sink.pid)" 2>/dev/null
  rm -f /tmp/kill-sink.pid
  wait_for 10 "! netstat -ltn | grep -q ':7003 '"
}

# start_link_probe verbs|tcp: node B's side of the node-pair link probe (pair_link_probe serve),
# in the background; port 15009 because this node's sidecar holds the node-agent port 15008.
LINK_PROBE_PORT=15009
start_link_probe() {
  pair_link_probe serve $B_IP:$LINK_PROBE_PORT node-b "$1" > /tmp/link-probe.log 2>&1 &
  wait_for 10 "netstat -ltn | grep -q ':$LINK_PROBE_PORT '"
}

# remove_rxe: this node loses its RDMA device (already gone: fine).
remove_rxe() {
  [ -e /sys/class/infiniband/rxe0 ] || return 0
  rdma link delete rxe0 && wait_for 10 "! ls /sys/class/infiniband/rxe0"
}

# restore_rxe: the rxe device back on eth0 (after remove_rxe), with its RoCEv2 GID.
restore_rxe() {
  [ -e /sys/class/infiniband/rxe0 ] || rdma link add rxe0 type rxe netdev eth0 || return 1
  wait_for 10 "ls /sys/class/infiniband/rxe0/ports/1/gids/1"
}

# ---- mesh mode: rdmesh-node owns the fabric (one link to the other guest), the sidecar attaches
# node_req JSON: one request to this guest's node agent; prints the reply.
node_req() { rdmesh-bed-tool node $NODE_SOCK "$1"; }
# node_stat NAME: a stat of this guest's node agent without the rdmesh. prefix (texts unquoted).
node_stat() {
  node_req '{"v":1,"op":"stats"}' | grep -oE "\"rdmesh\.$1\":(\"[^\"]*\"|[0-9]+)" |
    head -n 1 | sed 's/^"[^"]*"://' | tr -d '"'
}
node_stat_is() { [ "$(node_stat "$1")" = "$2" ]; }

# write_node_config NODE: rdmesh-node without eBPF capture (the apps dial their sidecar
# directly), its link to the other guest on the guest address, RDMA on any device it finds
# (BED_NODE_RDMA=false: tcp links only, for the benchmark).
write_node_config() {
  node_addresses "$1"
  cat > /tmp/node-$1.yaml <<YAML
node: {name: $1}
socket: $NODE_SOCK
state_file: /tmp/rdmesh-pods.json
capture: {bpf: false}
log_level: info
fabric:
  listen: $me:15008
  rdma: ${BED_NODE_RDMA:-true}
  # Asked for, but rxe in this kernel has no on-demand paging: the agent must say so and pin.
  on_demand_paging: true
  peers:
    - {name: $peer, address: "$peer_ip:15008"}
YAML
}

# start_node NODE: this guest's node agent, ready on node.sock, with the guest registered as the
# pod that owns the guest's address (the agent checks that session ops come from its netns).
start_node() {
  write_node_config "$1"
  node_addresses "$1"
  rdmesh-node -c /tmp/node-$1.yaml >> /tmp/node.log 2>&1 &
  echo $! > /tmp/node.pid
  rdmesh-bed-tool retry 30 rdmesh-bed-tool node $NODE_SOCK '{"v":1,"op":"stats"}' > /dev/null ||
    { echo "rdmesh-node did not answer on $NODE_SOCK"; tail -n 20 /tmp/node.log; return 1; }
  node_req "{\"v\":1,\"op\":\"pod_add\",\"container_id\":\"bed-$1\",\"netns\":\"/proc/1/ns/net\",\"ips\":[\"$me\"],\"interface\":\"eth0\",\"pod_name\":\"bed-$1\",\"pod_namespace\":\"default\"}" ||
    { echo "pod_add refused"; return 1; }
}

# stop_node: SIGKILL this guest's node agent (its sidecars see their sessions hang up).
stop_node() {
  [ -f /tmp/node.pid ] && kill -9 "$(cat /tmp/node.pid)" 2>/dev/null
  rm -f /tmp/node.pid
  wait_for 10 "! rdmesh-bed-tool node $NODE_SOCK '{\"v\":1,\"op\":\"stats\"}'"
}

# start_mesh_proxy NODE: the sidecar in mesh mode; ready once it listens for its pod IP at the
# agent (mesh.listener.up), so sessions from the other guest find it.
start_mesh_proxy() {
  write_mesh_config "$1"
  rdmesh-proxy -c /tmp/$1.yaml --log-level info >> /tmp/proxy.log 2>&1 &
  echo $! > /tmp/proxy.pid
  wait_for 30 "wget -q -O /dev/null $ADMIN/ready" || { echo "mesh sidecar not ready"; return 1; }
  wait_for 30 "sh /opt/guest-lib.sh stat_is mesh.listener.up 1" ||
    { echo "mesh sidecar does not listen at the agent"; tail -n 20 /tmp/proxy.log; return 1; }
}

# start_mesh NODE: agent, then the sidecar attached to it.
start_mesh() { start_node "$1" && start_mesh_proxy "$1"; }

# start_stream_server NODE FABRIC SPIN_US: rdmesh-stream-bench's echo/discard server as node-a
# or node-b on 15018 (one transport stream without sidecars: the benchmark's transport-level
# figures), with the benchmark's sidecar rings.
start_stream_server() {
  node_addresses "$1"
  rm -f /tmp/stream-serve.log
  rdmesh-stream-bench --fabric "$2" --poll-budget-us "$3" --ring-bytes "${BED_RING_BYTES:-4194304}" \
    --max-streams "${BED_MAX_STREAMS:-16}" serve "$me:15018" "$1" > /tmp/stream-serve.log 2>&1 &
  echo $! > /tmp/stream-serve.pid
  wait_for 30 "grep -q '^serve: listening' /tmp/stream-serve.log"
}
stop_stream_server() {
  [ -f /tmp/stream-serve.pid ] || return 0
  pid=$(cat /tmp/stream-serve.pid)
  kill "$pid" 2>/dev/null
  rm -f /tmp/stream-serve.pid
  wait_for 10 "! kill -0 $pid"
}

if [ -n "$1" ] && [ "$(basename "$0")" = guest-lib.sh ]; then
  "$@"
fi
