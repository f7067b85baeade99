// rdmesh-node: the per-node agent (node.sock, pod registry, eBPF capture, the session switch).
#include "node_main.h"

int main(int argc, char** argv) {
  return rdmesh::node::nodeMain(argc, argv, rdmesh::node::productionLinkDomains());
}
