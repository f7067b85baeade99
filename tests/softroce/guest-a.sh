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

# Sanitizer builds: any report in either sidecar's log fails this case.
sanitizer_clean() {
  pattern='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'
  if grep -E "$pattern" /tmp/proxy.log; then return 1; fi
  if remote "grep -E '$pattern' /tmp/proxy.log"; then return 1; fi
  echo "no sanitizer reports in either sidecar log"
}
run_case sanitizer_clean sanitizer_clean

remote exit >/dev/null
echo "---- node-a sidecar log (tail)"; tail -n 60 /tmp/proxy.log
echo "---- node-a stats"; stats | grep -E 'session|server' | head -40
