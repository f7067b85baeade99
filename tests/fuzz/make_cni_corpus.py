#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_cni_stdin under tests/fuzz/corpus/fuzz_cni_stdin/. The first
byte of each input picks the mode (0 ADD, 1 DEL, 2 CHECK, 3 VERSION stdin; 4 node agent reply;
5 CNI_ARGS), the rest is the input."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_cni_stdin")
ADD, DEL, CHECK, VERSION, REPLY, ARGS = range(6)

BRIDGE = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "cni0", "mac": "da:e9:64:a9:10:53"},
                         {"name": "veth09a6f375", "mac": "72:55:9b:10:74:83"},
                         {"name": "eth0", "mac": "a6:be:ec:b8:61:18", "sandbox": "/proc/1/ns/net"}],
          "ips": [{"interface": 2, "address": "10.233.1.3/24", "gateway": "10.233.1.1"}],
          "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}


def conf(version="1.0.0", prev=BRIDGE, **extra):
    c = {"cniVersion": version, "name": "rdmesh", "type": "rdmesh-cni"}
    c.update(extra)
    if prev is not None:
        c["prevResult"] = prev
    return json.dumps(c).encode()


def write(name, mode, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode]) + data)


write("add-valid", ADD, conf(nodeSocket="/run/rdmesh/node.sock", excludeOutboundPorts=[5432, 6379],
                             excludeNamespaces=["kube-system"], logFile="/var/log/rdmesh-cni.log",
                             agentTimeoutMs=5000))
write("add-v6-dual", ADD, conf(prev={"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
                                     "ips": [{"interface": 0, "address": "fd00::5/64"},
                                             {"interface": 0, "address": "10.0.0.5/24"}]}))
write("add-convert-0.4.0", ADD, conf(version="0.4.0", prev=dict(BRIDGE, cniVersion="1.0.0")))
write("add-0.3.1-version-field", ADD, conf(version="1.0.0", prev={"cniVersion": "0.3.1", "ips": [
    {"version": "4", "address": "10.1.0.2/16"}]}))
write("add-no-prev", ADD, conf(prev=None))
write("add-prev-no-pod-ip", ADD, conf(prev={"interfaces": [{"name": "cni0"}],
                                            "ips": [{"interface": 0, "address": "10.0.0.1/24"}]}))
write("add-bad-index", ADD, conf(prev={"ips": [{"interface": 9, "address": "10.0.0.1/24"}]}))
write("add-bad-ports", ADD, conf(excludeOutboundPorts=[0, 70000, "x"]))
write("add-bad-socket", ADD, conf(nodeSocket="relative"))
write("add-wrong-version", ADD, conf(version="0.2.0"))
write("add-no-version", ADD, b'{"name":"x","prevResult":{}}')
write("add-not-json", ADD, b"{cniVersion: 1.0.0")
write("add-array", ADD, b"[1,2,3]")
write("add-deep", ADD, b'{"cniVersion":"1.0.0","prevResult":' + b"[" * 200 + b"]" * 200 + b"}")
write("add-utf8", ADD, conf(name="r\u00e9seau"))
write("add-invalid-utf8", ADD, b'{"cniVersion":"1.0.0","name":"\xff\xfe"}')
write("del-valid", DEL, conf(prev=None))
write("del-garbage-prev", DEL, conf(prev={"ips": "no"}))
write("check-valid", CHECK, conf())
write("check-old-version", CHECK, conf(version="0.3.1"))
write("version", VERSION, b'{"cniVersion":"1.0.0"}')
write("reply-add-ok", REPLY, b'{"ok":true,"netns_cookie":4097}')
write("reply-refused", REPLY, b'{"ok":false,"error":"netns: no such file"}')
write("reply-list", REPLY, json.dumps({"ok": True, "pods": [
    {"container_id": "c1", "netns_cookie": 5, "ips": ["10.0.0.5"], "pod_name": "a",
     "pod_namespace": "b"}]}).encode())
write("reply-negative-cookie", REPLY, b'{"ok":true,"netns_cookie":-1}')
write("reply-no-ok", REPLY, b'{"netns_cookie":1}')
write("args-k8s", ARGS, b"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
                        b"K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2-3")
write("args-bad", ARGS, b"K8S_POD_NAME;=x")
