#!/usr/bin/env python3
"""Writes the seed corpora of the transport fuzz targets (fuzz_hello, fuzz_control_records,
fuzz_tcp_frames, fuzz_verbs_bootstrap, fuzz_pair_link) under tests/fuzz/corpus/<target>/. Layouts follow
transport-rdma/include/rdmesh/transport/wire.h (all little-endian). Re-run after a wire change."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x534D4452


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- Hello: HelloHeader (32 bytes) + node name
def hello(name=b"node-a", vmin=1, vmax=1, kind=1, streams=1024, ring=256 << 10,
          ctrl=256 << 10, depth=4096, keepalive=15000, magic=MAGIC, name_len=None):
    n = len(name) if name_len is None else name_len
    return struct.pack("<IHHHHIIIII", magic, vmin, vmax, kind, n, streams, ring, ctrl, depth,
                       keepalive) + name


write("fuzz_hello", "valid-tcp", hello())
write("fuzz_hello", "valid-shm-minimal", hello(b"a", kind=2, streams=1, ring=4096, ctrl=16 << 10,
                                               depth=64, keepalive=1))
write("fuzz_hello", "valid-verbs-limits", hello(b"n" * 253, kind=3, vmin=1, vmax=9, streams=4096,
                                                ring=16 << 20, ctrl=4 << 20, depth=65536,
                                                keepalive=0xFFFFFFFF))
write("fuzz_hello", "invalid-bad-magic", hello(magic=0x50545448))
write("fuzz_hello", "invalid-truncated", hello()[:20])
write("fuzz_hello", "invalid-name-length", hello(name_len=7))
write("fuzz_hello", "invalid-name-chars", hello(b"Node_A"))
write("fuzz_hello", "invalid-versions", hello(vmin=2, vmax=1))
write("fuzz_hello", "invalid-ring-not-power-of-two", hello(ring=6144))
write("fuzz_hello", "invalid-recv-depth", hello(depth=63))
write("fuzz_hello", "invalid-fabric-kind", hello(kind=5))
write("fuzz_hello", "valid-agent", hello(b"node-a", kind=4))


# ---- control records: ControlRecordHeader {type:8, flags:8, body_bytes:16, stream:32} + body
def rec(rtype, stream, body=b"", body_len=None):
    n = len(body) if body_len is None else body_len
    return struct.pack("<BBHI", rtype, 0, n, stream) + body


def open_rec(stream, family, addr, port, identity=b"", id_len=None):
    n = len(identity) if id_len is None else id_len
    body = struct.pack("<BBH", family, n, port) + addr.ljust(16, b"\0") + identity
    return rec(1, stream, body)


V4 = bytes([10, 0, 0, 7])
V6 = bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1])
every = b"".join([
    open_rec(0x00001001, 4, V4, 8080, b"spiffe://cluster.local/ns/default/sa/web"),
    open_rec(0x00002002, 6, V6, 443),
    rec(2, 0x00001001, struct.pack("<I", 0x00003003)),
    rec(3, 5),
    rec(4, 6, struct.pack("<I", 3)),
    rec(5, 7, struct.pack("<Q", 2048)),
    rec(6, 0, struct.pack("<QQ", 256, 16384)),
    rec(7, 0, struct.pack("<Q", 1)),
    rec(8, 0, struct.pack("<Q", 1)),
    rec(9, 0),
    rec(10, 0, struct.pack("<I", 1)),
])
write("fuzz_control_records", "valid-every-type", every)
write("fuzz_control_records", "valid-open-v4", open_rec(1, 4, V4, 80, b"id"))
write("fuzz_control_records", "valid-credits", rec(5, 9, struct.pack("<Q", 1 << 40)) +
      rec(6, 0, struct.pack("<QQ", 1, 2)))
write("fuzz_control_records", "empty", b"")
write("fuzz_control_records", "invalid-truncated-header", rec(3, 5)[:5])
write("fuzz_control_records", "invalid-unknown-type", rec(11, 0))
write("fuzz_control_records", "invalid-idle-close-step", rec(10, 0, struct.pack("<I", 4)))
write("fuzz_control_records", "invalid-body-length", rec(4, 6, struct.pack("<H", 3)))
write("fuzz_control_records", "invalid-body-overrun", rec(7, 0, b"\1\2\3", body_len=8))
write("fuzz_control_records", "invalid-open-identity-length",
      open_rec(1, 4, V4, 80, b"abc", id_len=4))
write("fuzz_control_records", "invalid-open-family", open_rec(1, 5, V4, 80))
write("fuzz_control_records", "invalid-bad-record-in-middle",
      rec(3, 5) + rec(5, 7, struct.pack("<I", 1)) + rec(9, 0))


# ---- tcp frames: TcpFrameHeader {imm:32, length:32, remote_offset:64} + payload
# fuzz_tcp_frames' receive area is 64 KiB (control ring 16 KiB + 12 rings of 4 KiB).
AREA = 65536


def imm(t, slot, length):
    return (t << 28) | ((slot & 0xFFF) << 16) | (length & 0xFFFF)


def frame(t, slot, payload, offset, length=None, imm_length=None):
    n = len(payload) if length is None else length
    il = n if imm_length is None else imm_length
    return struct.pack("<IIQ", imm(t, slot, il), n, offset) + payload


write("fuzz_tcp_frames", "valid-one-frame", frame(1, 0, b"hello world", 16384))
write("fuzz_tcp_frames", "valid-control-and-data",
      frame(2, 0, every[:64], 0) + frame(1, 3, bytes(range(200)), 16384 + 3 * 4096) +
      frame(1, 3, b"x" * 100, 16384 + 3 * 4096 + 200))
write("fuzz_tcp_frames", "valid-up-to-the-end", frame(1, 11, b"\xff" * 16, AREA - 16))
write("fuzz_tcp_frames", "valid-largest-frame", frame(1, 0, b"\xab" * 65535, 0))
write("fuzz_tcp_frames", "partial-frame-at-end", frame(1, 0, b"abcdef", 100)[:19])
write("fuzz_tcp_frames", "partial-header-at-end", frame(1, 0, b"abcdef", 100) + b"\1\2\3")
write("fuzz_tcp_frames", "empty", b"")
write("fuzz_tcp_frames", "invalid-offset-beyond-area",
      frame(1, 0, b"ok", 0) + frame(1, 0, b"z" * 32, AREA - 16))
write("fuzz_tcp_frames", "invalid-offset-wraps", frame(1, 0, b"z" * 32, 2**64 - 8))
write("fuzz_tcp_frames", "invalid-length-vs-imm", frame(1, 0, b"z" * 32, 0, imm_length=31))
write("fuzz_tcp_frames", "invalid-zero-length", frame(1, 0, b"", 0))


# ---- verbs bootstrap (fuzz_verbs_bootstrap): first byte 0 = VerbsQpInfo, 1 = VerbsReady.
# VerbsQpInfo: magic, version, offer, path_mtu, qp_num, psn, gid[16], area_addr, area_bytes,
# area_rkey, recv_wqes, reason_bytes, reserved0, reserved1 (64 bytes) + reason
QP_MAGIC, READY_MAGIC = 0x50514452, 0x59524452
GID_V4 = bytes([0] * 10 + [0xFF, 0xFF, 192, 168, 77, 1])


def qp_info(offer=1, mtu=3, qpn=17, psn=0xABCDEF, gid=GID_V4, addr=0x7F0000000000,
            size=(256 << 10) * 257, rkey=0x1234, wqes=4096, reason=b"", reason_len=None,
            magic=QP_MAGIC, version=1, reserved=0):
    n = len(reason) if reason_len is None else reason_len
    return b"\0" + struct.pack("<IHBBII16sQQIIHHI", magic, version, offer, mtu, qpn, psn, gid, addr,
                               size, rkey, wqes, n, 0, reserved) + reason


def ready(ok=1, reason=b"", reason_len=None, magic=READY_MAGIC):
    n = len(reason) if reason_len is None else reason_len
    return b"\1" + struct.pack("<IBBH", magic, ok, 0, n) + reason


T = "fuzz_verbs_bootstrap"
write(T, "valid-offer", qp_info())
write(T, "valid-decline", qp_info(offer=2, qpn=0, gid=bytes(16), size=0, wqes=0,
                                  reason=b"no RDMA device on this node"))
write(T, "valid-ready", ready())
write(T, "valid-ready-failed", ready(ok=0, reason=b"ibv_modify_qp INIT -> RTR: Invalid argument"))
write(T, "invalid-magic", qp_info(magic=0x12345678))
write(T, "invalid-version", qp_info(version=2))
write(T, "invalid-mtu", qp_info(mtu=7))
write(T, "invalid-qpn-wide", qp_info(qpn=1 << 24))
write(T, "invalid-zero-gid", qp_info(gid=bytes(16)))
write(T, "invalid-area-wraps", qp_info(addr=(1 << 64) - 4096))
write(T, "invalid-reason-length", qp_info(offer=2, reason=b"x", reason_len=300))
write(T, "invalid-reason-bytes", qp_info(offer=2, reason=b"bad\x1b[31m"))
write(T, "invalid-truncated", qp_info()[:40])
write(T, "invalid-ready-no-reason", ready(ok=0))
write(T, "invalid-ready-flag", ready(ok=3))


# ---- node-pair link (link_wire.h): first byte 0 = LinkHello, 1 = tcp link frame stream
LINK_MAGIC = 0x4B4C4452


def link_hello(name=b"node-a", vmin=1, vmax=1, kind=3, reserved=0, magic=LINK_MAGIC,
               name_len=None):
    n = len(name) if name_len is None else name_len
    return struct.pack("<IHHHHI", magic, vmin, vmax, kind, n, reserved) + name


def link_frame(ftype, imm=0, key=0, payload=b"", offset=0, length=None, reserved=0):
    n = len(payload) if length is None else length
    return struct.pack("<BBHIIIQ", ftype, reserved, 0, imm, key, n, offset) + payload


write("fuzz_pair_link", "hello-valid-verbs", b"\x00" + link_hello())
write("fuzz_pair_link", "hello-valid-tcp-long", b"\x00" + link_hello(b"n" * 253, kind=1, vmax=7))
write("fuzz_pair_link", "hello-invalid-session-magic", b"\x00" + link_hello(magic=MAGIC))
write("fuzz_pair_link", "hello-invalid-shm", b"\x00" + link_hello(kind=2))
write("fuzz_pair_link", "hello-invalid-reserved", b"\x00" + link_hello(reserved=1))
write("fuzz_pair_link", "hello-invalid-name", b"\x00" + link_hello(b"Node_A"))
write("fuzz_pair_link", "hello-invalid-truncated", b"\x00" + link_hello()[:10])
# The fuzz target's one registration is key 1, 64 KiB.
DATA = (1 << 28) | (3 << 16) | 5  # a v1 data immediate: type 1, slot 3
write("fuzz_pair_link", "frames-valid-mixed", b"\x01" + link_frame(1, DATA, 1, b"hello", 100)
      + link_frame(2, payload=b"open session 7") + link_frame(1, DATA, 1, b"", 65536)
      + link_frame(1, DATA, 1, bytes(range(256)) * 64, 0))
write("fuzz_pair_link", "frames-valid-large-cut", b"\x01" + link_frame(1, DATA, 1, b"x" * 9000,
                                                                      30000)[:5000])
# Whole frames, then a large write cut off mid-payload: its first bytes may land before (and
# without) an arrival, as with RDMA; the fuzzer found the first model missing that.
write("fuzz_pair_link", "frames-valid-then-large-cut", b"\x01" + link_frame(1, DATA, 1, b"hello", 100)
      + link_frame(2, payload=b"open session 7")
      + link_frame(1, DATA, 1, bytes(range(256)) * 64, 0)[:9000])
write("fuzz_pair_link", "frames-invalid-unknown-key", b"\x01" + link_frame(1, DATA, 2, b"abc"))
write("fuzz_pair_link", "frames-invalid-out-of-bounds", b"\x01" + link_frame(1, DATA, 1, b"abc",
                                                                            65534))
write("fuzz_pair_link", "frames-invalid-offset-wraps", b"\x01" + link_frame(
    1, DATA, 1, b"abc", (1 << 64) - 1))
write("fuzz_pair_link", "frames-invalid-reserved-imm", b"\x01" + link_frame(1, 0xF1000000, 1,
                                                                           b"abc"))
write("fuzz_pair_link", "frames-invalid-empty-control", b"\x01" + link_frame(2))
write("fuzz_pair_link", "frames-invalid-control-fields", b"\x01" + link_frame(2, 1, 0, b"abc"))
write("fuzz_pair_link", "frames-invalid-type", b"\x01" + link_frame(3, payload=b"abc"))
write("fuzz_pair_link", "frames-invalid-huge", b"\x01" + link_frame(1, DATA, 1,
                                                                    length=(1 << 30) + 1))
# ---- node agent replies and events (docs/node-agent.md), JSON with Hellos as lowercase hex
def agent_hello(name=b"node-b"):
    return hello(name, kind=4).hex()


write("fuzz_agent_messages", "valid-offer",
      ('{"event":"offer","offer_id":7,"peer_node":"node-b","peer_ip":"10.0.0.2",'
       '"destination_ip":"10.0.0.1","peer_hello":"%s"}' % agent_hello()).encode())
write("fuzz_agent_messages", "valid-offer-v6",
      ('{"event":"offer","offer_id":18446744073709551615,"peer_node":"b","peer_ip":"fd00:0::2",'
       '"destination_ip":"fd00::1","peer_hello":"%s"}' % agent_hello(b"b")).encode())
write("fuzz_agent_messages", "valid-reply-agent",
      ('{"ok":true,"mode":"agent","peer_hello":"%s"}' % agent_hello()).encode())
write("fuzz_agent_messages", "valid-reply-shm", b'{"ok":true,"mode":"shm"}')
write("fuzz_agent_messages", "valid-reply-error",
      b'{"ok":false,"error":"no sidecar listens for 10.0.0.9"}')
write("fuzz_agent_messages", "valid-unknown-event", b'{"event":"drain","v":2}')
write("fuzz_agent_messages", "invalid-offer-bad-ip",
      ('{"event":"offer","offer_id":1,"peer_node":"n","peer_ip":"10.0.0.256",'
       '"destination_ip":"10.0.0.1","peer_hello":"%s"}' % agent_hello()).encode())
write("fuzz_agent_messages", "invalid-offer-negative-id",
      b'{"event":"offer","offer_id":-1,"peer_node":"n","peer_ip":"1.2.3.4"}')
write("fuzz_agent_messages", "invalid-hello-odd-hex", b'{"ok":true,"mode":"agent","peer_hello":"abc"}')
write("fuzz_agent_messages", "invalid-hello-upper-hex",
      ('{"ok":true,"peer_hello":"%s"}' % agent_hello().upper()).encode())
write("fuzz_agent_messages", "invalid-mode", b'{"ok":true,"mode":"rdma"}')
write("fuzz_agent_messages", "invalid-ok-type", b'{"ok":"true"}')
write("fuzz_agent_messages", "invalid-not-object", b'["ok",true]')
write("fuzz_agent_messages", "invalid-truncated", b'{"ok":tr')
