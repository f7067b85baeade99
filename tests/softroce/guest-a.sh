#!/bin/sh
# Node A of the Soft-RoCE bed: runs every case against node B through the mesh and prints one
# "@@RESULT case pass|fail detail" line per case; the host turns them into the ctest report.
. /opt/guest-lib.sh
remote() { rdmesh-bed-tool remote $AGENT "$*"; }
# run_case NAME COMMAND...: pass when the command exits 0; its last output line is the detail.
run_case() {
  name=$1; shift
  out=$("$@" 2>&1); rc=$?
  echo "$out" | tail -n 5
  detail=$(echo "$out" | tail -n 1 | tr ' ' '_' | cut -c1-200)
  if [ $rc -eq 0 ]; then result "$name" pass "$detail"; else result "$name" fail "rc=$rc:$detail"; fi
}
wait_session() { wait_for "$1" "sh /opt/guest-lib.sh stat_is session.node-b.state established"; }
wait_reconnect() { wait_for "$1" "sh /opt/guest-lib.sh stat_above session.node-b.connects_total $2"; }

start_proxy node-a verbs || say "node-a sidecar not ready"
wait_for 120 "rdmesh-bed-tool remote $AGENT true" || say "node-b agent unreachable"
if wait_session 60; then
  fabric=$(stat_value session.node-b.fabric)
  if [ "$fabric" = verbs ]; then result verbs_session pass "fabric=verbs"; else result verbs_session fail "fabric=$fabric"; fi
else
  result verbs_session fail "session_not_established"
fi

run_case echo rdmesh-bed-tool echo 127.0.0.1:17001 65536 1
run_case transfer_256m rdmesh-bed-tool push 127.0.0.1:17002 268435456
run_case streams_200 rdmesh-bed-tool echo 127.0.0.1:17001 32768 200
run_case redis sh -c "redis-benchmark -h 127.0.0.1 -p 16379 -n 2000 -c 20 -t set,get -q \
  | tr '\r' '\n' | grep 'requests per second' | tee /tmp/redis.out; [ \$(grep -c 'requests per second' /tmp/redis.out) -eq 2 ]"
say "fabric after the data cases: $(stat_value session.node-b.fabric)"

# Two node agents' link domains (no sidecars): 64 MiB of writes from registered memory into the
# peer's, immediates and byte counts in order, control messages among them, hashes compared.
link_probe() {
  remote sh /opt/guest-lib.sh start_link_probe "$1" || { echo "cannot start the probe on node-b"; return 1; }
  pair_link_probe dial $B_IP:$LINK_PROBE_PORT node-a 67108864 "$1" && return 0
  echo "node-b's side:"; remote cat /tmp/link-probe.log; return 1
}
run_case link_verbs link_probe verbs

# Peer sidecar killed mid-transfer: the app must see the connection fail (never a silent
# success), and the session must come back when the peer restarts.
peer_killed() {
  before=$(stat_value session.node-b.connects_total)
  remote sh /opt/guest-lib.sh start_kill_sink || { echo "cannot start the kill sink"; return 1; }
  rdmesh-bed-tool push 127.0.0.1:17003 268435456; rc=$?
  [ $rc -eq 3 ] || { echo "push did not see the failure (rc=$rc)"; return 1; }
  remote sh /opt/guest-lib.sh start_proxy node-b verbs || { echo "peer restart failed"; return 1; }
  wait_reconnect 60 "$before" || { echo "session did not come back"; return 1; }
  wait_session 30 || { echo "session not established"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 65536 4 || return 1
  echo "interrupted_then_recovered fabric=$(stat_value session.node-b.fabric)"
}
run_case peer_killed peer_killed

# The peer loses its RDMA device: the same session setup must fall back to tcp, visibly.
fallback_tcp() {
  before=$(stat_value session.node-b.connects_total)
  remote sh /opt/guest-lib.sh stop_proxy
  remote sh /opt/guest-lib.sh remove_rxe || { echo "cannot remove rxe0 on node-b"; return 1; }
  remote sh /opt/guest-lib.sh start_proxy node-b verbs || { echo "peer restart failed"; return 1; }
  wait_reconnect 60 "$before" || { echo "session did not come back"; return 1; }
  fabric=$(stat_value session.node-b.fabric)
  [ "$fabric" = tcp ] || { echo "fabric is $fabric, expected tcp"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 1048576 4 || return 1
  grep -q "falls back to tcp" /tmp/proxy.log || { echo "no fallback reason logged"; return 1; }
  echo "fabric=tcp reason=$(grep -m1 'falls back to tcp' /tmp/proxy.log | sed 's/.*tcp: //' | tr ' ' '_')"
}
run_case fallback_tcp fallback_tcp
# node B has no rxe device now: the link must come up over tcp on the same connection, with the
# reason on node A's side.
run_case link_fallback link_probe tcp

# ---- Mesh mode over real verbs: rdmesh-node in each guest owns ONE link to the other guest (an
# RC QP on rxe0), the sidecars attach to it over node.sock and own no fabric. The same cases
# again, as mesh_<case>, plus a sidecar killed, the peer AGENT killed and the link's fallback.
mesh_b_stat() { remote sh /opt/guest-lib.sh stat_value "$1"; }
mesh_b_node_stat() { remote sh /opt/guest-lib.sh node_stat "$1"; }
wait_link() { wait_for "$1" "sh /opt/guest-lib.sh node_stat_is node.link.node-b.kind $2"; }
wait_b_listens() {
  wait_for "$1" "[ \"\$(rdmesh-bed-tool remote $AGENT 'sh /opt/guest-lib.sh node_stat node.sessions.listeners')\" -ge 1 ]"
}
mesh_session() {
  # The standalone sidecars and B's earlier device removal make way.
  stop_proxy
  remote sh /opt/guest-lib.sh stop_proxy
  remote sh /opt/guest-lib.sh restore_rxe || { echo "cannot restore rxe0 on node-b"; return 1; }
  remote sh /opt/guest-lib.sh start_mesh node-b || { echo "node-b's agent or sidecar did not start"; return 1; }
  start_mesh node-a || { echo "node-a's agent or sidecar did not start"; return 1; }
  wait_link 60 verbs ||
    { echo "link to node-b is $(node_stat node.link.node-b.kind): $(node_stat node.link.node-b.fallback_reason)"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 4096 1 || return 1
  [ "$(stat_value server.fabric)" = agent ] || { echo "sidecar fabric $(stat_value server.fabric)"; return 1; }
  wait_for 10 "sh /opt/guest-lib.sh stat_is session.$MESH_B.state established" ||
    { echo "session $MESH_B: $(stat_value session.$MESH_B.state)"; return 1; }
  fabric=$(stat_value session.$MESH_B.fabric)
  [ "$fabric" = agent ] || { echo "session fabric is $fabric, expected agent"; return 1; }
  # Each agent registered the session's region (mesh geometry: 256 x 256 KiB rings + 4 MiB
  # staging) with its rxe0.
  reg=$(node_stat node.sessions.registered_bytes) reg_b=$(mesh_b_node_stat node.sessions.registered_bytes)
  [ "${reg:-0}" -gt 0 ] && [ "${reg_b:-0}" -gt 0 ] || { echo "registered bytes a=$reg b=$reg_b"; return 1; }
  # on_demand_paging is asked for, but rxe has no ODP: the agent says why and pins everything.
  odp=$(node_stat node.sessions.on_demand_paging) pinned=$(node_stat node.sessions.pinned_bytes)
  case "$odp" in "off: no on-demand paging on rxe0") ;; *) echo "on_demand_paging: '$odp'"; return 1 ;; esac
  [ "$pinned" = "$reg" ] || { echo "pinned $pinned of $reg registered bytes"; return 1; }
  echo "link=verbs session=agent registered_a=$reg registered_b=$reg_b pinned_a=$pinned odp='$odp'"
}
run_case mesh_session mesh_session

# mesh_checked COMMAND...: the command passes through the agents' datapath and the link is
# still verbs afterwards.
mesh_checked() {
  subs=$(node_stat node.datapath.submissions)
  out=$("$@") || { echo "$out"; return 1; }
  kind=$(node_stat node.link.node-b.kind)
  [ "$kind" = verbs ] || { echo "$out"; echo "link is $kind after the case"; return 1; }
  echo "$(echo "$out" | tail -n 1) link=verbs agent_submissions=$(( $(node_stat node.datapath.submissions) - ${subs:-0} ))"
}
run_case mesh_echo mesh_checked rdmesh-bed-tool echo 127.0.0.1:17001 65536 1
run_case mesh_transfer_256m mesh_checked rdmesh-bed-tool push 127.0.0.1:17002 268435456
run_case mesh_streams_200 mesh_checked rdmesh-bed-tool echo 127.0.0.1:17001 32768 200
run_case mesh_redis mesh_checked sh -c "redis-benchmark -h 127.0.0.1 -p 16379 -n 2000 -c 20 -t set,get -q \
  | tr '\r' '\n' | grep 'requests per second' | tee /tmp/redis.out; [ \$(grep -c 'requests per second' /tmp/redis.out) -eq 2 ]"

# A sidecar SIGKILLed: its sessions are closed on both agents and everything it held is released
# (registered bytes, fds); a restarted sidecar attaches again and works.
mesh_sidecar_killed() {
  rdmesh-bed-tool echo 127.0.0.1:17001 4096 1 > /dev/null || return 1
  fds_attached=$(node_stat node.process.open_fds)
  stop_proxy
  wait_for 20 "sh /opt/guest-lib.sh node_stat_is node.sessions.registered_bytes 0" ||
    { echo "node-a still registers $(node_stat node.sessions.registered_bytes) bytes"; return 1; }
  wait_for 20 "[ \"\$(rdmesh-bed-tool remote $AGENT 'sh /opt/guest-lib.sh node_stat node.sessions.registered_bytes')\" = 0 ]" ||
    { echo "node-b still registers $(mesh_b_node_stat node.sessions.registered_bytes) bytes"; return 1; }
  node_stat_is node.sessions.open_fds 0 || { echo "node-a holds $(node_stat node.sessions.open_fds) session fds"; return 1; }
  fds_after=$(node_stat node.process.open_fds)
  # The session's memfd and doorbells and the sidecar's connections are closed.
  [ "$fds_after" -lt "$fds_attached" ] || { echo "agent fds $fds_attached -> $fds_after"; return 1; }
  start_mesh_proxy node-a || return 1
  rdmesh-bed-tool echo 127.0.0.1:17001 65536 2 || return 1
  echo "released registered=0 session_fds=0 agent_fds=$fds_attached->$fds_after then_reattached"
}
run_case mesh_sidecar_killed mesh_sidecar_killed

# The PEER AGENT (rdmesh-node on B) SIGKILLed mid-transfer: the app on A sees the failure (never
# a silent success), B's agent restarts, B's sidecar reattaches, a new connection from A works.
mesh_agent_killed() {
  lost=$(node_stat node.links.lost_total)
  remote sh /opt/guest-lib.sh start_kill_sink /tmp/node.pid || { echo "cannot start the kill sink"; return 1; }
  rdmesh-bed-tool push 127.0.0.1:17003 268435456; rc=$?
  [ $rc -eq 3 ] || { echo "push did not see the failure (rc=$rc)"; return 1; }
  wait_for 20 "[ \$(sh /opt/guest-lib.sh node_stat node.links.lost_total) -gt ${lost:-0} ]" ||
    { echo "node-a did not notice the link loss"; return 1; }
  remote sh /opt/guest-lib.sh start_node node-b || { echo "node-b's agent did not restart"; return 1; }
  wait_b_listens 60 || { echo "node-b's sidecar did not reattach"; return 1; }
  wait_link 60 verbs || { echo "link is $(node_stat node.link.node-b.kind)"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 65536 4 || return 1
  echo "interrupted(rc=3)_then_recovered link=verbs b_sidecar_listener=$(mesh_b_stat mesh.listener.up)"
}
run_case mesh_agent_killed mesh_agent_killed

# A session nobody uses is closed by the two sidecars (IDLE_CLOSE) and both agents release its
# rxe0 registration; the next connection dials a new session over the same verbs link. Node A's
# sidecar restarts with a 3 s idle timeout (B confirms whatever its own timeout).
mesh_idle_close() {
  stop_proxy
  export BED_IDLE_MS=3000
  start_mesh_proxy node-a || return 1
  unset BED_IDLE_MS
  rdmesh-bed-tool echo 127.0.0.1:17001 65536 5 || return 1
  reg=$(node_stat node.sessions.registered_bytes)
  [ "${reg:-0}" -gt 0 ] || { echo "nothing registered after the echo"; return 1; }
  wait_for 30 "sh /opt/guest-lib.sh node_stat_is node.sessions.registered_bytes 0" ||
    { echo "node-a still registers $(node_stat node.sessions.registered_bytes) bytes"; return 1; }
  wait_for 30 "[ \"\$(rdmesh-bed-tool remote $AGENT 'sh /opt/guest-lib.sh node_stat node.sessions.registered_bytes')\" = 0 ]" ||
    { echo "node-b still registers $(mesh_b_node_stat node.sessions.registered_bytes) bytes"; return 1; }
  closes=$(stat_value session.$MESH_B.idle_closes_total) lost=$(stat_value session.$MESH_B.disconnects_total)
  [ "$closes" = 1 ] && [ "$lost" = 0 ] || { echo "idle closes $closes, disconnects $lost"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 65536 6 || { echo "no new session after the idle close"; return 1; }
  kind=$(node_stat node.link.node-b.kind)
  [ "$kind" = verbs ] || { echo "link is $kind"; return 1; }
  echo "released_a=$reg->0 released_b=0 idle_closes=$closes disconnects=$lost then_redialed link=verbs"
  stop_proxy
  start_mesh_proxy node-a
}
run_case mesh_idle_close mesh_idle_close

# Node B loses its RDMA device and its agent restarts: the link comes up over tcp on the same
# connection attempt, node A's agent says why (stats), and the mesh carries the data.
mesh_fallback_tcp() {
  remote sh /opt/guest-lib.sh stop_node
  remote sh /opt/guest-lib.sh remove_rxe || { echo "cannot remove rxe0 on node-b"; return 1; }
  remote sh /opt/guest-lib.sh start_node node-b || { echo "node-b's agent did not restart"; return 1; }
  wait_b_listens 60 || { echo "node-b's sidecar did not reattach"; return 1; }
  wait_link 60 tcp || { echo "link is $(node_stat node.link.node-b.kind)"; return 1; }
  reason=$(node_stat node.link.node-b.fallback_reason)
  [ -n "$reason" ] || { echo "no fallback reason in node-a's stats"; return 1; }
  rdmesh-bed-tool echo 127.0.0.1:17001 1048576 4 || return 1
  echo "link=tcp reason=$(echo "$reason" | tr ' ' '_')"
}
run_case mesh_fallback_tcp mesh_fallback_tcp

# Sanitizer builds: any report in either sidecar's log fails this case.
sanitizer_clean() {
  pattern='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
  if grep -E "$pattern" /tmp/proxy.log /tmp/node.log; then return 1; fi
  if remote "grep -E '$pattern' /tmp/proxy.log /tmp/node.log"; then return 1; fi
  echo "no sanitizer reports in either guest's sidecar or node agent log"
}
run_case sanitizer_clean sanitizer_clean

remote exit >/dev/null
echo "---- node-a sidecar log (tail)"; tail -n 60 /tmp/proxy.log
echo "---- node-a stats"; stats | grep -E 'session|server' | head -40
echo "---- node-a agent log (tail)"; tail -n 40 /tmp/node.log
echo "---- node-a agent stats"; node_req '{"v":1,"op":"stats"}' | tr ',' '\n' | grep -E 'link|sessions|datapath'
