// CNI specification versions: "major.minor.patch" strings compared as numbers.
#pragma once

#include <optional>
#include <string_view>
#include <tuple>

namespace rdmesh::cni {

struct SpecVersion {
  unsigned major = 0;
  unsigned minor = 0;
  unsigned patch = 0;
  auto operator<=>(const SpecVersion&) const = default;
};

// "1.0.0" -> {1,0,0}; nullopt for anything that is not three dot-separated decimal numbers.
std::optional<SpecVersion> parseSpecVersion(std::string_view text);
// True when rdmesh-cni speaks this exact version (kSupportedVersions).
bool isSupportedVersion(std::string_view text);
// True when `text` is a version at or after `minimum` (false when unparsable).
bool versionAtLeast(std::string_view text, std::string_view minimum);

}  // namespace rdmesh::cni
