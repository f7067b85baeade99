#!/bin/bash
# build-initramfs.sh OUT KVER FILE...: a busybox initramfs for the Soft-RoCE bed with the guest
# kernel's rxe and virtio-net modules (in dependency order), rdma-core's rxe provider and tools,
# perftest, redis, and FILE... (ELF programs go to /opt with every library they load, stripped;
# scripts go to /opt as they are).
set -euo pipefail
OUT=$1 KVER=$2; shift 2
MODDIR=/lib/modules/$KVER
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,opt,etc/libibverbs.d,lib/modules,lib64,proc,sys,dev,tmp,run} \
  "$ROOT"/usr/lib/x86_64-linux-gnu/libibverbs "$ROOT"/lib/x86_64-linux-gnu
cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"  # /init is a script; the other applets are linked at boot

# modules: resolve dependencies from modules.dep, dependencies first
declare -A seen=()
order=()
dep_of() { awk -F': ' -v m="$1" '$1 == m { print $2; exit }' "$MODDIR/modules.dep"; }
path_of() {
  awk -F: -v a="/$1.ko" -v b="/${1//_/-}.ko" '{ p = $1; sub(/\.(xz|zst|gz)$/, "", p) }
    substr(p, length(p) - length(a) + 1) == a || substr(p, length(p) - length(b) + 1) == b { print $1; exit }' \
    "$MODDIR/modules.dep"
}
add_module() {
  [[ -n ${seen[$1]:-} ]] && return
  seen[$1]=1
  local d
  for d in $(dep_of "$1"); do add_module "$d"; done
  order+=("$1")
}
# crc32_generic: rxe needs the crc32 shash and nothing in the initramfs would modprobe it.
for m in crc32_generic virtio_pci virtio_net rdma_rxe; do
  p=$(path_of "$m")
  [[ -n $p ]] || { echo "module $m not found in $MODDIR" >&2; exit 1; }
  add_module "$p"
done
: > "$ROOT/modules.order"
for rel in "${order[@]}"; do
  base=$(basename "$rel")
  case $rel in
    *.xz) base=${base%.xz}; xz -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$base" ;;
    *.zst) base=${base%.zst}; zstd -qdc "$MODDIR/$rel" > "$ROOT/lib/modules/$base" ;;
    *.gz) base=${base%.gz}; gzip -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$base" ;;
    *) cp "$MODDIR/$rel" "$ROOT/lib/modules/$base" ;;
  esac
  echo "$base" >> "$ROOT/modules.order"
done

copy_libs() {
  ldd "$1" 2>/dev/null | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | while read -r lib; do
    [[ -f $lib ]] || continue
    case $lib in
      /lib64/*) cp -Ln "$lib" "$ROOT$lib" ;;
      *) cp -Ln "$lib" "$ROOT/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
    esac
  done
}
install_bin() { # SRC DEST_DIR [NAME]
  local dest=$ROOT/$2/${3:-$(basename "$1")}
  cp -L "$1" "$dest"
  strip --strip-debug "$dest" 2>/dev/null || true
  copy_libs "$1"
}

for b in rdma ibv_devices ibv_devinfo ib_write_bw ib_write_lat redis-benchmark; do
  src=$(command -v "$b" || true)
  [[ -n $src ]] && install_bin "$src" usr/bin
done
# Debian's redis-server is a symlink to redis-check-rdb, which picks its role by argv[0].
install_bin "$(command -v redis-server)" usr/bin redis-server
prov=$(ls /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so | head -n 1)
cp -L "$prov" "$ROOT/usr/lib/x86_64-linux-gnu/libibverbs/"
copy_libs "$prov"
cp /etc/libibverbs.d/rxe.driver "$ROOT/etc/libibverbs.d/"

for f in "$@"; do
  if file -L "$f" | grep -q ELF; then install_bin "$f" opt; else cp -L "$f" "$ROOT/opt/"; fi
done
chmod +x "$ROOT"/opt/*
mv "$ROOT/opt/guest-init.sh" "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"
