// libFuzzer target for the YAML config parser. Beyond "never crash", it checks two properties:
// every rejection is an InvalidArgument that names the source, and every accepted config dumps
// to JSON that parses back to the same config (JSON is YAML, and the dump uses the config's keys).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config.h"

namespace {

[[noreturn]] void failProperty(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_config: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rdmesh::StatusCode;
  using rdmesh::proxy::configToJson;
  using rdmesh::proxy::parseConfig;

  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = parseConfig(text, "fuzz.yaml");
  if (!config.isOk()) {
    const std::string& message = config.status().message();
    if (config.status().code() != StatusCode::kInvalidArgument) {
      failProperty("rejected with a code other than InvalidArgument", message);
    }
    if (message.rfind("fuzz.yaml:", 0) != 0)
      failProperty("error does not name the source", message);
    return 0;
  }

  const std::string json = configToJson(config.value());
  auto reparsed = parseConfig(json, "dump.json");
  if (!reparsed.isOk())
    failProperty("config dump does not parse back", reparsed.status().message());
  if (configToJson(reparsed.value()) != json) failProperty("config dump changed on reparse", json);
  return 0;
}
