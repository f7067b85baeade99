#!/bin/sh
# Node A of the Soft-RoCE benchmark, all in one boot over the same rxe devices:
#   raw verbs (perftest ib_write_bw / ib_write_lat), then one transport stream without sidecars
#   (rdmesh-stream-bench: verbs spinning 50 us and not at all, then tcp), then one rdmesh stream
#   through a sidecar pair over the verbs backend, then over the tcp backend, then in mesh mode
#   (sidecars behind rdmesh-node, the agents' link on verbs, then on tcp), then direct
#   guest-to-guest TCP for context.
# Prints "@@BENCH key value" lines; the host computes the ratios.
. /opt/guest-lib.sh
remote() { rdmesh-bed-tool remote $AGENT "$*"; }
bench() { echo "@@BENCH $1 $2"; }
PUSH_BYTES=${PUSH_BYTES:-67108864}
# Fewer, larger rings than the test bed: one bulk stream should not wait for credit.
export BED_RING_BYTES=4194304 BED_MAX_STREAMS=16
RTT_COUNT=${RTT_COUNT:-1000}

wait_for 120 "rdmesh-bed-tool remote $AGENT true" || say "node-b agent unreachable"
# perftest needs the peer's sidecar out of the way only for CPU; stop it for a clean raw figure.
remote sh /opt/guest-lib.sh stop_proxy > /dev/null

remote "ib_write_bw -d rxe0 -x 1 -s 65536 -D 5 -p 18516 > /tmp/bw.log 2>&1 &"
rdmesh-bed-tool retry 60 sh -c "ib_write_bw -d rxe0 -x 1 -s 65536 -D 5 -p 18516 $B_IP > /tmp/bw.log 2>&1"
cat /tmp/bw.log | tail -n 4
bench ib_write_bw_MBps "$(awk '$1 == 65536 { print $4 }' /tmp/bw.log | tail -n 1)"

remote "ib_write_lat -d rxe0 -x 1 -s 64 -n $RTT_COUNT -p 18517 > /tmp/lat.log 2>&1 &"
rdmesh-bed-tool retry 60 sh -c "ib_write_lat -d rxe0 -x 1 -s 64 -n $RTT_COUNT -p 18517 $B_IP > /tmp/lat.log 2>&1"
cat /tmp/lat.log | tail -n 4
# perftest's write latency is half a ping-pong round trip: t_typical and t_avg columns.
bench ib_write_lat_typical_us "$(awk '$1 == 64 { print $5 }' /tmp/lat.log | tail -n 1)"
bench ib_write_lat_avg_us "$(awk '$1 == 64 { print $6 }' /tmp/lat.log | tail -n 1)"

# One transport stream without sidecars (rdmesh-stream-bench): the session protocol over the same
# rxe devices, its ring and spin budget as the sidecars' below, app<->sidecar loopback TCP hops
# left out. Node B echoes (port 7) or discards (port 9) on the stream itself.
stream_measure() { # LABEL FABRIC SPIN_US
  opts="--fabric $2 --poll-budget-us $3 --ring-bytes $BED_RING_BYTES --max-streams $BED_MAX_STREAMS --expect-fabric $2"
  remote "BED_RING_BYTES=$BED_RING_BYTES BED_MAX_STREAMS=$BED_MAX_STREAMS sh /opt/guest-lib.sh start_stream_server node-b $2 $3" > /dev/null ||
    say "node-b stream server not ready"
  rdmesh-stream-bench $opts push node-b@$B_IP:15018 node-a "$PUSH_BYTES" | tee /tmp/spush.out
  bench "$1_MBps" "$(sed -n 's/.* MBps=\([0-9.]*\).*/\1/p' /tmp/spush.out)"
  rdmesh-stream-bench $opts ping node-b@$B_IP:15018 node-a "$RTT_COUNT" 64 | tee /tmp/sping.out
  bench "$1_rtt64_median_us" "$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' /tmp/sping.out)"
  bench "$1_rtt64_mean_us" "$(sed -n 's/.*mean_us=\([0-9.]*\).*/\1/p' /tmp/sping.out)"
  bench "$1_fabric" "$(sed -n 's/.* fabric=\([a-z]*\).*/\1/p' /tmp/sping.out)"
  remote sh /opt/guest-lib.sh stop_stream_server > /dev/null
}
stream_measure stream_verbs_spin50 verbs 50
stream_measure stream_verbs_spin0 verbs 0
stream_measure stream_tcp_spin50 tcp 50
# A budget that covers one emulated round trip (~1 ms here), as 50 us covers one on an RNIC
# (a few us): what the default does on hardware, scaled to these guests.
stream_measure stream_verbs_spin5000 verbs 5000

measure() { # LABEL: one stream's throughput and a 64-byte round trip through the mesh
  rdmesh-bed-tool blast 127.0.0.1:17004 "$PUSH_BYTES" | tee /tmp/push.out
  bench "$1_stream_MBps" "$(sed -n 's/.* MBps=\([0-9.]*\).*/\1/p' /tmp/push.out)"
  rdmesh-bed-tool rtt 127.0.0.1:17001 "$RTT_COUNT" 64 | tee /tmp/rtt.out
  bench "$1_rtt64_median_us" "$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' /tmp/rtt.out)"
  bench "$1_rtt64_mean_us" "$(sed -n 's/.*mean_us=\([0-9.]*\).*/\1/p' /tmp/rtt.out)"
}
# verbs with the default spin budget and without spinning (each guest has one emulated vCPU: a
# spinning sidecar takes it from the app and from rxe's own kernel work), then tcp.
for run in verbs:50 verbs:0 tcp:50; do
  backend=${run%:*}
  export BED_POLL_BUDGET_US=${run#*:}
  label=rdmesh_${backend}_spin${BED_POLL_BUDGET_US}
  stop_proxy > /dev/null 2>&1
  remote sh /opt/guest-lib.sh stop_proxy > /dev/null
  remote "BED_RING_BYTES=$BED_RING_BYTES BED_MAX_STREAMS=$BED_MAX_STREAMS BED_POLL_BUDGET_US=$BED_POLL_BUDGET_US sh /opt/guest-lib.sh start_proxy node-b $backend" > /dev/null
  start_proxy node-a $backend
  wait_for 60 "sh /opt/guest-lib.sh stat_is session.node-b.state established"
  bench "${label}_fabric" "$(stat_value session.node-b.fabric)"
  measure "$label"
done

# Mesh mode: rdmesh-node in each guest owns the link (an RC QP on rxe0, then tcp), the sidecars
# attach to it: sidecar -> agent -> verbs -> agent -> sidecar. Same rings as above.
stop_proxy > /dev/null 2>&1
remote sh /opt/guest-lib.sh stop_proxy > /dev/null
# The sidecars spin 50 us or not at all (the agents' own budget is fixed); one vCPU per guest.
for run in verbs:50 verbs:0 tcp:50; do
  link=${run%:*}
  export BED_POLL_BUDGET_US=${run#*:}
  rdma=true
  [ $link = tcp ] && rdma=false
  label=rdmesh_mesh_${link}_spin${BED_POLL_BUDGET_US}
  stop_proxy > /dev/null 2>&1
  stop_node > /dev/null 2>&1
  remote sh /opt/guest-lib.sh stop_proxy > /dev/null
  remote sh /opt/guest-lib.sh stop_node > /dev/null
  envs="BED_RING_BYTES=$BED_RING_BYTES BED_MAX_STREAMS=$BED_MAX_STREAMS BED_POLL_BUDGET_US=$BED_POLL_BUDGET_US BED_NODE_RDMA=$rdma"
  remote "$envs sh /opt/guest-lib.sh start_mesh node-b" > /dev/null || say "node-b mesh start failed"
  export BED_NODE_RDMA=$rdma
  start_mesh node-a > /dev/null || say "node-a mesh start failed"
  wait_for 60 "sh /opt/guest-lib.sh node_stat_is node.link.node-b.kind $link"
  bench "${label}_link" "$(node_stat node.link.node-b.kind)"
  measure "$label"
  bench "${label}_fabric" "$(stat_value session.$MESH_B.fabric)"
done
stop_proxy > /dev/null 2>&1
stop_node > /dev/null 2>&1

# direct TCP between the guests (no sidecars), for context
rdmesh-bed-tool blast $B_IP:7004 "$PUSH_BYTES" | tee /tmp/push.out
bench direct_tcp_stream_MBps "$(sed -n 's/.* MBps=\([0-9.]*\).*/\1/p' /tmp/push.out)"
rdmesh-bed-tool rtt $B_IP:7001 "$RTT_COUNT" 64 | tee /tmp/rtt.out
bench direct_tcp_rtt64_median_us "$(sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' /tmp/rtt.out)"
remote exit > /dev/null
