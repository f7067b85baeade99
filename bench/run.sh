#!/usr/bin/env bash
# Sidecar-pair benchmark, rdmesh vs. direct TCP, HAProxy and nginx, in one run (root needed):
#
#   bash bench/run.sh                 # full run (~6 min);  QUICK=1: one-minute smoke run
#   ROUNDS=3 PIN=1 bash bench/run.sh  # interleaved rounds (medians), one core per node
#
# Builds rdmesh-proxy (Release) in $RDMESH_BUILD [build], then runs the shared peer harness
# ../shared/bench/mesh-bench.sh (override: MESH_BENCH=/path/to/mesh-bench.sh) with the rdmesh
# modes from bench/mesh-bench-rdmesh.sh. Every knob of the harness passes through from the
# environment (MODES, QUICK, ROUNDS, PIN, RESULTS, REDIS_N, WRK_D, ...; see mesh-bench.sh --help).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MESH_BENCH=${MESH_BENCH:-$ROOT/../shared/bench/mesh-bench.sh}
RDMESH_BUILD=${RDMESH_BUILD:-build}
[[ $RDMESH_BUILD == /* ]] || RDMESH_BUILD=$ROOT/$RDMESH_BUILD

[[ $(id -u) -eq 0 ]] || { echo "bench/run.sh: run as root (network namespaces)" >&2; exit 1; }
[[ -f $MESH_BENCH ]] || { echo "bench/run.sh: harness not found at $MESH_BENCH (set MESH_BENCH)" >&2; exit 1; }

[[ ${SKIP_DEPS:-0} == 1 ]] || bash scripts/install-deps.sh
if [[ ! -f $RDMESH_BUILD/CMakeCache.txt ]]; then
  cmake -S . -B "$RDMESH_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRDMESH_BUILD_BENCH=OFF -DRDMESH_BUILD_TESTS=OFF
else
  cmake -S . -B "$RDMESH_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if grep -q 'RDMESH_SANITIZE:STRING=.\+' "$RDMESH_BUILD/CMakeCache.txt"; then
  echo "bench/run.sh: $RDMESH_BUILD is a sanitizer build; numbers would be meaningless (set RDMESH_BUILD)" >&2
  exit 1
fi
ninja -C "$RDMESH_BUILD" -j2 rdmesh-proxy

export RDMESH_BUILD
export MB_PLUGINS="${MB_PLUGINS:+$MB_PLUGINS }$ROOT/bench/mesh-bench-rdmesh.sh"
export MODES=${MODES:-"direct haproxy nginx rdmesh_tcp rdmesh_shm"}
for knob in QUICK ROUNDS PIN RESULTS KEEP_WORK MAX_SECONDS SETTLE; do
  [[ -n ${!knob:-} ]] && export "${knob?}"
done
echo "bench/run.sh: $MESH_BENCH, MODES=\"$MODES\", QUICK=${QUICK:-0} ROUNDS=${ROUNDS:-1} PIN=${PIN:-0}, proxy $RDMESH_BUILD/proxy/rdmesh-proxy" >&2
exec bash "$MESH_BENCH"
