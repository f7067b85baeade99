#!/usr/bin/env bash
# Installs everything rdmesh needs to build, test and run its demo on a fresh Debian machine.
# Debian packages only; idempotent; must run as root.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: run as root (apt-get needs it)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang clang-format clang-tidy libclang-rt-14-dev
  # libraries
  libibverbs-dev librdmacm-dev libevent-dev libnghttp2-dev libssl-dev libyaml-cpp-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  # eBPF capture (cni-init/): libbpf, bpftool (vmlinux.h, skeletons), kernel uapi headers
  libbpf-dev bpftool linux-libc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # real peers and clients for the demo, tests and benchmarks
  redis-server redis-tools nginx-light haproxy wrk iperf3 curl iproute2 procps psmisc
  # test certificates for TLS on the xDS port (openssl CLI)
  openssl
  # the peer benchmark harness (bench/run.sh): nginx stream pair, socat pair
  libnginx-mod-stream socat
  # the Soft-RoCE bed (tests/softroce, bench/softroce): qemu guests running Debian's kernel with
  # rdma_rxe, rdma-core's rxe provider and tools, perftest, a static busybox for the initramfs
  qemu-system-x86 linux-image-amd64 busybox-static rdma-core ibverbs-providers ibverbs-utils
  perftest cpio file
  # rdmesh-cni's test bed: a real container runtime (ctr run --cni) with Debian's CNI plugins,
  # busybox for the unpacked container root filesystems, nft to show no rule of rdmesh exists
  containerd runc containernetworking-plugins nftables iptables
  # rdmesh-xds high availability: the tests start a real etcd (v3 API) and use etcdctl
  etcd-server etcd-client
  # the Helm chart's tests (tests/helm): Go text/template + sprig render the chart as helm does;
  # jq for rdmesh-install-cni (the DaemonSet's CNI installer)
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev jq
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Package post-install scripts may start daemons; the demo and tests start their own.
for svc in redis-server nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  pkill -x "${svc%-server}" >/dev/null 2>&1 || true
done
pkill -x redis-server >/dev/null 2>&1 || true
# etcd-server's unit would serve 127.0.0.1:2379; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
# Kubernetes schema validation for the chart and webhook tests (kubernetes-models, ajv), from the
# npm registry with the committed lock file, with the machine's Node.js.
if command -v npm >/dev/null 2>&1; then
  (cd "$(dirname "${BASH_SOURCE[0]}")/../tests/helm/validate" && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "install-deps.sh: no npm: the chart and webhook schema validation tests will be skipped" >&2
fi
echo "install-deps.sh: all dependencies present"
