#!/usr/bin/env bash
# THE test command. On a fresh Debian 12 machine, as root:
#
#   bash scripts/run-tests.sh            [extra ctest arguments, e.g. -L unit  or  -R Echo]
#
# 1. installs the build/test dependencies (scripts/install-deps.sh; skipped when not root),
# 2. configures and builds everything with AddressSanitizer + UBSan in build-asan/ (ninja -j2),
# 3. runs ctest (unit, fuzz-corpus replay and integration tests, one at a time).
# The exit code is ctest's. Integration tests need root (network namespaces); without root they
# report themselves as skipped. Knobs: RDMESH_TEST_BUILD_DIR [build-asan], JOBS [2],
# RDMESH_SKIP_DEPS=1 (dependencies already installed; install-deps.sh also stops running
# redis-server/nginx/haproxy daemons, which a shared machine may not want).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${RDMESH_TEST_BUILD_DIR:-build-asan}
JOBS=${JOBS:-2}

log() { printf '[run-tests] %s\n' "$*" >&2; }

if [[ ${RDMESH_SKIP_DEPS:-0} == 1 ]]; then
  log "RDMESH_SKIP_DEPS=1: not running scripts/install-deps.sh"
elif [[ $(id -u) -eq 0 ]]; then
  bash scripts/install-deps.sh
else
  log "not root: skipping scripts/install-deps.sh (dependencies must already be installed);"
  log "integration tests need root and will be skipped"
fi

log "configure $BUILD_DIR (RelWithDebInfo, address,undefined sanitizers)"
cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRDMESH_SANITIZE=address,undefined \
  -DRDMESH_BUILD_BENCH=OFF
log "build (ninja -j$JOBS)"
ninja -C "$BUILD_DIR" -j"$JOBS"

# Sanitizer settings for the tests and every rdmesh-proxy they start (children inherit them).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# 1000-connection tests need more than the usual 1024 descriptors (the harness raises it too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "ctest (integration tests run one at a time: they share CPU and use network namespaces)"
set +e
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 "$@"
rc=$?
set -e
log "ctest exit code $rc"
exit "$rc"
