// Strict reading of one JSON object: known keys only, typed fields, the first error wins and
// names the field path. Shared by the resource and message parsers.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::xds::detail {

using Json = nlohmann::json;
using KeyList = std::initializer_list<std::string_view>;

// Parses JSON text with the size and depth caps of the contract; errors are "<what>: ...".
Result<Json> parseJsonText(std::string_view text, std::string_view what);

std::string joinPath(const std::string& path, std::string_view key);
std::string indexPath(const std::string& path, size_t index);
const char* describe(const Json& value);

// Field checks shared by several parsers.
bool isIp(std::string_view text);
bool isIpPort(std::string_view text);
// A Kubernetes DNS-1123 label (namespaces, service names): [a-z0-9-], <= 63, alnum at the ends.
bool isDnsLabel(std::string_view text);
// A DNS-1123 subdomain (pod and node names): labels joined by '.', <= 253.
bool isDnsSubdomain(std::string_view text);
// Printable ASCII without spaces, non-empty (ids, versions, nonces, cluster names).
bool isToken(std::string_view text);

class ObjectReader {
 public:
  // Checks that `value` is an object whose keys are all in `known`.
  ObjectReader(const Json& value, std::string path, KeyList known);

  bool ok() const { return status_.isOk(); }
  const Status& status() const { return status_; }
  const std::string& path() const { return path_; }
  // Present and not null.
  const Json* find(std::string_view key) const;
  std::string fieldPath(std::string_view key) const { return joinPath(path_, key); }
  // Records an error for `key` (if none yet).
  void fail(std::string_view key, std::string_view message);
  // Records an error found by a nested reader (if none yet).
  void adopt(const Status& status) {
    if (ok()) status_ = status;
  }

  enum class Need { kRequired, kOptional };
  using Check = std::function<bool(std::string_view)>;

  // String fields; `check` (if any) must accept the value, else "`expected`" is reported.
  void string(std::string_view key, Need need, std::string* out, const Check& check = nullptr,
              std::string_view expected = {});
  void optionalString(std::string_view key, std::optional<std::string>* out,
                      const Check& check = nullptr, std::string_view expected = {});
  void integer(std::string_view key, Need need, int64_t min, int64_t max, int64_t* out);
  void port(std::string_view key, Need need, uint16_t* out, bool allow_zero = false);
  void stringList(std::string_view key, Need need, std::vector<std::string>* out,
                  const Check& check = nullptr, std::string_view expected = {});
  void stringMap(std::string_view key, Need need, std::map<std::string, std::string>* out,
                 const Check& check_key = nullptr, std::string_view expected_key = {});
  // A string naming one of `names` (index returned through `out`).
  void enumeration(std::string_view key, Need need, KeyList names, size_t* out);

  // A list of objects, each parsed by `parse(element, element_path)`.
  template <typename T, typename Parse>
  void objectList(std::string_view key, Need need, std::vector<T>* out, Parse parse) {
    const Json* list = listField(key, need);
    if (list == nullptr) return;
    out->reserve(list->size());
    for (size_t i = 0; i < list->size() && ok(); ++i) {
      Result<T> item = parse((*list)[i], indexPath(fieldPath(key), i));
      if (!item.isOk()) {
        status_ = item.status();
        return;
      }
      out->push_back(std::move(item).value());
    }
  }

 private:
  const Json* present(std::string_view key, Need need);
  const Json* listField(std::string_view key, Need need);

  const Json* object_ = nullptr;
  std::string path_;
  Status status_;
};

}  // namespace rdmesh::xds::detail
