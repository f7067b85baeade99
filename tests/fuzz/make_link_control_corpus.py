#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_link_control under tests/fuzz/corpus/fuzz_link_control/.
Layouts follow node/src/link_control_wire.h (all little-endian). Re-run after a wire change."""
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x434C4452


def write(name, data):
    d = os.path.join(HERE, "corpus", "fuzz_link_control")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def header(mtype, version=1, magic=MAGIC):
    return struct.pack("<IBBH", magic, version, mtype, 0)


def memory(addr=0x1000, size=1 << 20, key=7, roff=8192, rbytes=65536):
    return struct.pack("<QQIIQQ", addr, size, key, 0, roff, rbytes)


def ip(text):
    if ":" in text:
        return 6, socket.inet_pton(socket.AF_INET6, text)
    if not text:
        return 0, b"\0" * 16
    return 4, socket.inet_pton(socket.AF_INET, text) + b"\0" * 12


def open_msg(session=3, dst="10.1.0.2", src="10.1.0.1", hello=b"hello", mem=None):
    df, d = ip(dst)
    sf, s = ip(src)
    body = struct.pack("<IBBH", session, df, sf, len(hello)) + d + s + (mem or memory())
    return header(1) + body + hello


def accepted(opener=3, acceptor=9, hello=b"hi", mem=None):
    return header(2) + struct.pack("<II", opener, acceptor) + (mem or memory()) + \
        struct.pack("<H6x", len(hello)) + hello


write("open-v4", open_msg())
write("open-v6-no-source", open_msg(dst="fd00::2", src=""))
write("accepted", accepted())
write("refused", header(3) + struct.pack("<IHH", 3, 4, 0) + b"busy")
write("close", header(4) + struct.pack("<II", 9, 3))
write("close-unknown", header(4) + struct.pack("<II", 0xFFFFFFFF, 3))
write("close-ack", header(5) + struct.pack("<II", 3, 0))
write("invalid-magic", open_msg()[:0] + header(1, magic=0x1234) + b"\0" * 80)
write("invalid-version", header(1, version=2) + open_msg()[8:])
write("invalid-type", header(9) + struct.pack("<II", 1, 2))
write("invalid-truncated", open_msg()[:40])
write("invalid-memory", open_msg(mem=memory(size=4096)))
write("invalid-session", header(5) + struct.pack("<II", 70000, 0))
write("invalid-hello-length", open_msg()[:-1])
