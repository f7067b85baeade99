#!/bin/bash
# run-bed.sh BUILD_DIR OUT_DIR [tests|bench]: boots two qemu guests (Debian's 6.1 kernel under TCG,
# Soft-RoCE rxe devices, joined by a qemu UDP socket network) with the project's binaries, runs
# the cases (or the benchmark) over real verbs between them, and writes OUT_DIR/report.txt:
#   <case> pass|fail <detail>      one line per case (tests mode)
#   SKIP <reason>                  the host lacks qemu, the guest kernel or rdma-core
# plus the guests' console logs. Exit status: 0 when the bed ran (cases judge themselves).
set -uo pipefail
BUILD=$(cd "$1" && pwd) OUT=$2 MODE=${3:-tests}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPORT=$OUT/report.txt
: > "$REPORT"
skip() {
  echo "SKIP $*" > "$REPORT"
  echo "softroce bed skipped: $* (bash scripts/install-deps.sh installs what it needs)"
  exit 0
}

for c in qemu-system-x86_64 rdma cpio file; do
  command -v "$c" > /dev/null || skip "$c is not installed"
done
file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || skip "busybox-static is not installed"
KVER=${BED_KVER:-$(ls /lib/modules 2>/dev/null | grep -E '^6\.1\.' | sort -V | tail -n 1)}
[[ -n $KVER && -r /boot/vmlinuz-$KVER ]] || skip "no Debian 6.1 guest kernel (linux-image-amd64)"
ls /lib/modules/"$KVER"/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko* > /dev/null 2>&1 ||
  skip "guest kernel $KVER has no rdma_rxe module"
ls /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so > /dev/null 2>&1 ||
  skip "rdma-core's rxe provider (ibverbs-providers) is not installed"
if [[ $MODE = bench ]]; then
  command -v ib_write_bw > /dev/null || skip "perftest is not installed"
fi
PROXY=$BUILD/proxy/rdmesh-proxy TOOL=$BUILD/tests/softroce/rdmesh-bed-tool
PROBE=$BUILD/tests/softroce/pair_link_probe NODE=$BUILD/node/rdmesh-node
STREAM=$BUILD/tests/softroce/rdmesh-stream-bench
[[ -x $PROXY && -x $TOOL && -x $PROBE && -x $NODE ]] ||
  { echo "build rdmesh-proxy, rdmesh-node, rdmesh-bed-tool and pair_link_probe first" >&2; exit 2; }
# rdmesh-stream-bench (one transport stream without sidecars) only the benchmark needs.
[[ $MODE = bench && ! -x $STREAM ]] && { echo "build rdmesh-stream-bench first" >&2; exit 2; }
EXTRA=()
[[ -x $STREAM ]] && EXTRA=("$STREAM")

t0=$(date +%s)
INITRD=$OUT/initramfs.cpio.gz
"$HERE/build-initramfs.sh" "$INITRD" "$KVER" "$PROXY" "$NODE" "$TOOL" "$PROBE" "${EXTRA[@]}" \
  "$HERE"/guest-*.sh \
  "$HERE"/../../bench/softroce/bench-*.sh || { echo "initramfs build failed" >&2; exit 2; }
echo "initramfs $(du -h "$INITRD" | cut -f1) built in $(($(date +%s) - t0)) s"

PORT=${BED_PORT:-$((20000 + RANDOM % 30000))}
TIMEOUT=${BED_TIMEOUT:-900}
guest() { # ROLE IP MAC LOCALPORT PEERPORT
  timeout "$TIMEOUT" qemu-system-x86_64 -m 1024 -smp "${BED_SMP:-1}" -cpu max -nographic -no-reboot \
    -kernel "/boot/vmlinuz-$KVER" -initrd "$INITRD" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check bed_role=$1 bed_ip=$2 bed_mode=$MODE" \
    -netdev "socket,id=n0,udp=127.0.0.1:$5,localaddr=127.0.0.1:$4" \
    -device "virtio-net-pci,netdev=n0,mac=$3,speed=10000,duplex=full,romfile=" \
    < /dev/null 2>&1 | sed -u 's/\r$//' > "$OUT/node-$1.log"
}
guest b 192.168.77.2 52:54:00:77:00:02 $((PORT + 1)) "$PORT" &
PB=$!
guest a 192.168.77.1 52:54:00:77:00:01 "$PORT" $((PORT + 1)) &
PA=$!
wait $PA
# node A tells node B to finish; give it a moment, then stop it regardless.
for _ in $(seq 100); do kill -0 $PB 2> /dev/null || break; sleep 0.1; done
kill $PB 2> /dev/null
wait $PB 2> /dev/null
echo "bed ran in $(($(date +%s) - t0)) s (mode $MODE); logs in $OUT"

if [[ $MODE = bench ]]; then
  sed -n 's/^@@BENCH //p' "$OUT/node-a.log" > "$OUT/bench.txt"
  cat "$OUT/bench.txt"
  [[ -s $OUT/bench.txt ]] || { echo "no benchmark figures; see $OUT/node-a.log" >&2; exit 1; }
  exit 0
fi
sed -n 's/^@@RESULT //p' "$OUT/node-a.log" > "$REPORT"
cat "$REPORT"
[[ -s $REPORT ]] || { echo "no results; see $OUT/node-a.log" >&2; exit 1; }
exit 0
