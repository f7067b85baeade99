#!/bin/bash
# stream-bench-check.sh TOOL: rdmesh-stream-bench on the host over the tcp and shm fabrics (no
# RDMA here; the Soft-RoCE benchmark runs it over verbs): serve, then a checked ping-pong (odd
# size, larger than one write) and a push of an odd byte count whose count the server confirms.
# A failed check, a wrong fabric or a hang (timeout) fails the test.
set -uo pipefail
TOOL=$1
DIR=$(mktemp -d)
SERVER=
trap '[[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
fail() { echo "FAIL: $*"; cat "$DIR"/*.log 2>/dev/null; exit 1; }

for fabric in tcp shm; do
  if [[ $fabric = tcp ]]; then
    listen=127.0.0.1:$((20000 + RANDOM % 30000)) client=127.0.0.1:0
  else
    listen=$DIR/server.sock client=$DIR/client.sock
  fi
  "$TOOL" --fabric $fabric serve "$listen" node-b > "$DIR/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    grep -q '^serve: listening' "$DIR/serve.log" && break
    kill -0 $SERVER 2>/dev/null || fail "$fabric server exited"
    sleep 0.05
  done
  grep -q '^serve: listening' "$DIR/serve.log" || fail "$fabric server not listening"
  opts=(--fabric $fabric --listen "$client" --expect-fabric $fabric --timeout-s 60 --ring-bytes 65536)
  out=$("$TOOL" "${opts[@]}" ping "node-b@$listen" node-a 200 70001 2>&1) ||
    fail "$fabric ping: $out"
  grep -q '^ping: OK fabric='$fabric'.* count=200 size=70001 median_us=' <<< "$out" || fail "$fabric ping: $out"
  rm -f "$DIR/client.sock"
  out=$("$TOOL" "${opts[@]}" push "node-b@$listen" node-a 33554433 2>&1) || fail "$fabric push: $out"
  grep -q '^push: OK fabric='$fabric'.* bytes=33554433 .*MBps=' <<< "$out" || fail "$fabric push: $out"
  rm -f "$DIR/client.sock"
  # a client whose name does not sort first is refused before it dials
  "$TOOL" --fabric $fabric ping "node-b@$listen" node-c 1 64 > "$DIR/order.log" 2>&1
  [[ $? -eq 2 ]] && grep -q 'must sort before' "$DIR/order.log" || fail "name order not checked"
  kill $SERVER
  wait $SERVER 2>/dev/null
  SERVER=
  echo "$fabric: ok"
done
