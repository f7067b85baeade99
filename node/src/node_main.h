// rdmesh-node's command line and lifetime, shared by the binary and by test builds that inject
// their own LinkDomain.
//   rdmesh-node [-c node.yaml] [--node-name N] [--socket PATH] [--cgroup DIR] [--bpf=false]
//   rdmesh-node --uninstall     detach the capture programs and remove every pin
#pragma once

#include "agent.h"

namespace rdmesh::node {

int nodeMain(int argc, char** argv, LinkDomainFactory link_domains);

// The production LinkDomain (transport::makeLinkDomain: verbs with a tcp fallback).
LinkDomainFactory productionLinkDomains();

}  // namespace rdmesh::node
