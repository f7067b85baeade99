// libFuzzer target for what rdmesh-xds reads from the Kubernetes API server: watch event lines
// (through the same line splitter the watch uses), list pages and the translation of the
// objects they carry into Workloads, Services and Nodes, which must then pass the xDS codec or
// be rejected with a message. Never a crash, never an exception.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "k8s_translate.h"
#include "k8s_watch_event.h"
#include "rdmesh/xds/resources.h"
#include "stream_lines.h"

namespace {

using rdmesh::xds::ResourceType;
namespace k8s = rdmesh::xds::k8s;

void requireMessage(const rdmesh::Status& status, std::string_view input) {
  if (!status.isOk() && status.message().empty()) {
    std::fprintf(stderr, "rejected without a message: %.*s\n", static_cast<int>(input.size()),
                 input.data());
    std::abort();
  }
}

void translate(const nlohmann::json& object, std::string_view input) {
  auto check = [&](auto translated, ResourceType type) {
    requireMessage(translated.isOk() ? rdmesh::Status::ok() : translated.status(), input);
    if (translated.isOk() && translated->has_value()) {
      auto parsed = rdmesh::xds::parseResource(type, **translated, "fuzz");
      requireMessage(parsed.isOk() ? rdmesh::Status::ok() : parsed.status(), input);
    }
  };
  check(k8s::workloadFromPod(object, "cluster.local"), ResourceType::kWorkload);
  check(k8s::nodeFromNode(object), ResourceType::kNode);
  std::vector<const nlohmann::json*> slices = {&object};
  check(k8s::serviceFromService(object, slices), ResourceType::kService);
  (void)k8s::serviceOfEndpointSlice(object);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  rdmesh::xds::StreamLines lines(k8s::kMaxWatchLineBytes);
  (void)lines.feed(input, [&](std::string_view line) {
    auto event = k8s::parseWatchEvent(line);
    requireMessage(event.isOk() ? rdmesh::Status::ok() : event.status(), line);
    if (event.isOk() && event->type != k8s::WatchEventType::kError) translate(event->object, line);
    return rdmesh::Status::ok();
  });
  auto page = k8s::parseListPage(input);
  requireMessage(page.isOk() ? rdmesh::Status::ok() : page.status(), input);
  if (page.isOk()) {
    for (const auto& item : page->items) translate(item, input);
  }
  (void)k8s::parseApiStatus(input);
  return 0;
}
