#!/bin/sh
# /init of the Soft-RoCE bed's guests: modules, network, the rxe device, then the role's script.
# Kernel command line: bed_role=a|b bed_ip=ADDR bed_mode=tests|bench
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/opt
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /var
ln -s /run /var/run  # rdmesh-node keeps node.sock in /var/run/rdmesh
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
ulimit -l unlimited
for kv in $(cat /proc/cmdline); do
  case $kv in bed_role=*) ROLE=${kv#*=} ;; bed_ip=*) IP=${kv#*=} ;; bed_mode=*) MODE=${kv#*=} ;; esac
done
echo "@@BED $(cut -d' ' -f1 /proc/uptime) boot role=$ROLE ip=$IP mode=$MODE"
while read -r m; do insmod "/lib/modules/$m" || echo "insmod $m FAILED"; done < /modules.order
ip link set lo up
ip addr add "$IP/24" dev eth0
ip link set eth0 up
i=0; while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
rdma link add rxe0 type rxe netdev eth0 || echo "rdma link add FAILED"
i=0; while [ ! -e /sys/class/infiniband/rxe0/ports/1/gids/1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "@@BED $(cut -d' ' -f1 /proc/uptime) rxe $(cat /sys/class/infiniband/rxe0/ports/1/gids/1 2>/dev/null) $(cat /sys/class/infiniband/rxe0/ports/1/state 2>/dev/null)"
if [ "$MODE" = bench ]; then /opt/bench-$ROLE.sh; else /opt/guest-$ROLE.sh; fi
echo "@@BED $(cut -d' ' -f1 /proc/uptime) done"
poweroff -f
