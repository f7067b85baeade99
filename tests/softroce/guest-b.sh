#!/bin/sh
# Node B of the Soft-RoCE bed: the servers, its sidecar, and a remote-control agent that node A
# drives the cases through (kill the sidecar, restart it, remove the rxe device).
. /opt/guest-lib.sh
rdmesh-bed-tool serve 7001 > /tmp/echo.log 2>&1 &
rdmesh-bed-tool sink 7002 > /tmp/sink.log 2>&1 &
rdmesh-bed-tool discard 7004 > /tmp/discard.log 2>&1 &
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --protected-mode no \
  --daemonize yes --logfile /tmp/redis.log
start_proxy node-b verbs || say "node-b sidecar not ready"
say "node-b up"
rdmesh-bed-tool agent 9000
say "node-b done"
echo "---- node-b sidecar log (tail)"; tail -n 40 /tmp/proxy.log
echo "---- node-b stats"; stats | grep -E 'session|server' | head -40
echo "---- node-b agent log (tail)"; tail -n 40 /tmp/node.log 2>/dev/null
