#include "json_reader.h"

#include <arpa/inet.h>

#include <algorithm>

#include "fmt/format.h"
#include "rdmesh/common/address.h"
#include "rdmesh/xds/json_text.h"
#include "rdmesh/xds/wire.h"

namespace rdmesh::xds::detail {

Result<Json> parseJsonText(std::string_view text, std::string_view what) {
  return parseBoundedJson(text, what, JsonTextLimits{kMaxMessageBytes, kMaxJsonDepth});
}

std::string joinPath(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string indexPath(const std::string& path, size_t index) {
  return fmt::format("{}[{}]", path, index);
}

const char* describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "a list";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a fractional number";
    default:
      return "an unsupported value";
  }
}

bool isIp(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  std::string ip(text);
  in6_addr storage{};
  return inet_pton(AF_INET, ip.c_str(), &storage) == 1 ||
         inet_pton(AF_INET6, ip.c_str(), &storage) == 1;
}

bool isIpPort(std::string_view text) {
  Result<InetAddress> address = InetAddress::parse(text);
  return address.isOk() && address->port() != 0;
}

bool isDnsLabel(std::string_view text) {
  if (text.empty() || text.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(text.front()) || !alnum(text.back())) return false;
  return std::all_of(text.begin(), text.end(), [&](char c) { return alnum(c) || c == '-'; });
}

bool isDnsSubdomain(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = text.find('.', start);
    if (!isDnsLabel(text.substr(start, dot == text.npos ? text.npos : dot - start))) return false;
    if (dot == text.npos) return true;
    start = dot + 1;
  }
}

bool isToken(std::string_view text) {
  return !text.empty() && text.size() <= kMaxStringBytes &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

ObjectReader::ObjectReader(const Json& value, std::string path, KeyList known)
    : path_(std::move(path)) {
  if (!value.is_object()) {
    status_ = invalidArgument(fmt::format("{}: expected an object, got {}",
                                          path_.empty() ? "(message)" : path_, describe(value)));
    return;
  }
  object_ = &value;
  for (const auto& [key, unused] : value.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string expected;
      for (std::string_view name : known) {
        expected += expected.empty() ? "" : ", ";
        expected += name;
      }
      fail(key.size() > 64 ? key.substr(0, 64) + "..." : key,
           fmt::format("unknown field (known: {})", expected));
      return;
    }
  }
}

const Json* ObjectReader::find(std::string_view key) const {
  if (object_ == nullptr) return nullptr;
  auto it = object_->find(key);
  if (it == object_->end() || it->is_null()) return nullptr;
  return &*it;
}

void ObjectReader::fail(std::string_view key, std::string_view message) {
  if (ok()) status_ = invalidArgument(fmt::format("{}: {}", fieldPath(key), message));
}

const Json* ObjectReader::present(std::string_view key, Need need) {
  if (!ok()) return nullptr;
  const Json* value = find(key);
  if (value == nullptr && need == Need::kRequired) fail(key, "missing (required)");
  return value;
}

void ObjectReader::string(std::string_view key, Need need, std::string* out, const Check& check,
                          std::string_view expected) {
  const Json* value = present(key, need);
  if (value == nullptr) return;
  if (!value->is_string())
    return fail(key, fmt::format("expected string, got {}", describe(*value)));
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > kMaxStringBytes) {
    return fail(key, fmt::format("{} bytes, over the {}-byte limit", text.size(), kMaxStringBytes));
  }
  if (check && !check(text)) {
    return fail(key, fmt::format("expected {}, got \"{}\"", expected,
                                 text.size() > 80 ? text.substr(0, 80) + "..." : text));
  }
  *out = text;
}

void ObjectReader::optionalString(std::string_view key, std::optional<std::string>* out,
                                  const Check& check, std::string_view expected) {
  if (find(key) == nullptr) return;
  std::string text;
  string(key, Need::kRequired, &text, check, expected);
  if (ok()) *out = std::move(text);
}

void ObjectReader::integer(std::string_view key, Need need, int64_t min, int64_t max,
                           int64_t* out) {
  const Json* value = present(key, need);
  if (value == nullptr) return;
  if (!value->is_number_integer()) {
    return fail(key, fmt::format("expected integer, got {}", describe(*value)));
  }
  // Non-negative numbers parse as unsigned; compare them unsigned so 2^64-1 is not -1.
  bool in_range = value->is_number_unsigned()
                      ? value->get<uint64_t>() <= static_cast<uint64_t>(max) &&
                            static_cast<int64_t>(value->get<uint64_t>()) >= min
                      : value->get<int64_t>() >= min && value->get<int64_t>() <= max;
  if (!in_range) return fail(key, fmt::format("out of range [{}, {}]", min, max));
  *out = value->get<int64_t>();
}

void ObjectReader::port(std::string_view key, Need need, uint16_t* out, bool allow_zero) {
  int64_t value = *out;
  integer(key, need, allow_zero ? 0 : 1, 65535, &value);
  if (ok()) *out = static_cast<uint16_t>(value);
}

const Json* ObjectReader::listField(std::string_view key, Need need) {
  const Json* value = present(key, need);
  if (value == nullptr) return nullptr;
  if (!value->is_array()) {
    fail(key, fmt::format("expected list, got {}", describe(*value)));
    return nullptr;
  }
  if (value->size() > kMaxListEntries) {
    fail(key, fmt::format("{} entries, over the limit of {}", value->size(), kMaxListEntries));
    return nullptr;
  }
  return value;
}

void ObjectReader::stringList(std::string_view key, Need need, std::vector<std::string>* out,
                              const Check& check, std::string_view expected) {
  const Json* list = listField(key, need);
  if (list == nullptr) return;
  out->clear();
  out->reserve(list->size());
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& item = (*list)[i];
    std::string item_key = indexPath(std::string(key), i);
    if (!item.is_string()) {
      return fail(item_key, fmt::format("expected string, got {}", describe(item)));
    }
    const auto& text = item.get_ref<const std::string&>();
    if (text.size() > kMaxStringBytes) {
      return fail(item_key,
                  fmt::format("{} bytes, over the {}-byte limit", text.size(), kMaxStringBytes));
    }
    if (check && !check(text)) {
      return fail(item_key, fmt::format("expected {}, got \"{}\"", expected,
                                        text.size() > 80 ? text.substr(0, 80) + "..." : text));
    }
    out->push_back(text);
  }
}

void ObjectReader::stringMap(std::string_view key, Need need,
                             std::map<std::string, std::string>* out, const Check& check_key,
                             std::string_view expected_key) {
  const Json* value = present(key, need);
  if (value == nullptr) return;
  if (!value->is_object()) {
    return fail(key, fmt::format("expected object of strings, got {}", describe(*value)));
  }
  if (value->size() > kMaxListEntries) {
    return fail(key,
                fmt::format("{} entries, over the limit of {}", value->size(), kMaxListEntries));
  }
  out->clear();
  for (const auto& [name, item] : value->items()) {
    std::string item_key = joinPath(std::string(key), name.size() > 64 ? name.substr(0, 64) : name);
    if (name.empty() || name.size() > kMaxStringBytes || (check_key && !check_key(name))) {
      return fail(item_key, fmt::format("bad key: expected {}",
                                        expected_key.empty() ? "a non-empty name" : expected_key));
    }
    if (!item.is_string()) {
      return fail(item_key, fmt::format("expected string, got {}", describe(item)));
    }
    const auto& text = item.get_ref<const std::string&>();
    if (text.size() > kMaxStringBytes) {
      return fail(item_key,
                  fmt::format("{} bytes, over the {}-byte limit", text.size(), kMaxStringBytes));
    }
    (*out)[name] = text;
  }
}

void ObjectReader::enumeration(std::string_view key, Need need, KeyList names, size_t* out) {
  const Json* value = present(key, need);
  if (value == nullptr) return;
  std::string expected;
  for (std::string_view name : names) {
    expected += expected.empty() ? "\"" : " | \"";
    expected += name;
    expected += "\"";
  }
  if (value->is_string()) {
    const auto& text = value->get_ref<const std::string&>();
    auto it = std::find(names.begin(), names.end(), text);
    if (it != names.end()) {
      *out = static_cast<size_t>(it - names.begin());
      return;
    }
  }
  fail(key, fmt::format("expected {}", expected));
}

}  // namespace rdmesh::xds::detail
