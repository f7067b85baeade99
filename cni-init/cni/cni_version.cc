#include "cni_version.h"

#include <algorithm>
#include <charconv>

#include "cni_spec.h"

namespace rdmesh::cni {

std::string_view commandName(CniCommand command) {
  switch (command) {
    case CniCommand::kAdd:
      return "ADD";
    case CniCommand::kDel:
      return "DEL";
    case CniCommand::kCheck:
      return "CHECK";
    case CniCommand::kVersion:
      return "VERSION";
  }
  return "?";
}

namespace {

// One decimal component; advances `text` past it and an optional following '.'.
std::optional<unsigned> takeComponent(std::string_view& text, bool last) {
  const size_t end = last ? text.size() : text.find('.');
  if (end == std::string_view::npos || end == 0 || end > 6) return std::nullopt;
  unsigned value = 0;
  const auto* first = text.data();
  const auto [ptr, ec] = std::from_chars(first, first + end, value);
  if (ec != std::errc() || ptr != first + end) return std::nullopt;
  text.remove_prefix(last ? end : end + 1);
  return value;
}

}  // namespace

std::optional<SpecVersion> parseSpecVersion(std::string_view text) {
  auto major = takeComponent(text, false);
  if (!major) return std::nullopt;
  auto minor = takeComponent(text, false);
  if (!minor) return std::nullopt;
  auto patch = takeComponent(text, true);
  if (!patch) return std::nullopt;
  return SpecVersion{*major, *minor, *patch};
}

bool isSupportedVersion(std::string_view text) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), text) !=
         kSupportedVersions.end();
}

bool versionAtLeast(std::string_view text, std::string_view minimum) {
  const auto v = parseSpecVersion(text);
  const auto m = parseSpecVersion(minimum);
  return v && m && *v >= *m;
}

}  // namespace rdmesh::cni
