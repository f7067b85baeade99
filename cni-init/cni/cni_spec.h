// What the CNI specification (1.0.0) fixes for a plugin: commands, error codes, versions, and
// the error value every stage of rdmesh-cni returns. Written once here, used by every file.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace rdmesh::cni {

enum class CniCommand { kAdd, kDel, kCheck, kVersion };

std::string_view commandName(CniCommand command);

// Well-known error codes (spec "Error codes"; 0-99 reserved) and rdmesh-cni's own (100+).
enum CniErrorCode : uint32_t {
  kErrIncompatibleVersion = 1,
  kErrUnsupportedField = 2,
  kErrUnknownContainer = 3,
  kErrInvalidEnvironment = 4,
  kErrIoFailure = 5,
  kErrDecodingFailure = 6,
  kErrInvalidNetworkConfig = 7,
  kErrTryAgainLater = 11,
  // The node agent answered but refused the request (its reason is in the message).
  kErrAgentRefused = 100,
  // The node agent's reply broke the node socket contract, or it did not answer in time.
  kErrAgentProtocol = 101,
};

// The error object printed on stdout (with a non-zero exit code): {cniVersion, code, msg, details}.
struct CniError {
  uint32_t code = kErrInvalidNetworkConfig;
  std::string msg;      // short: what failed
  std::string details;  // longer: why, and which field/variable
};

// A stage's value or the CNI error that ends the invocation.
template <typename T>
using CniOr = std::variant<T, CniError>;

template <typename T>
bool isError(const CniOr<T>& v) {
  return std::holds_alternative<CniError>(v);
}

// Result formats 0.3.0 .. 1.0.0 share one shape (ips/interfaces/routes/dns), which is what lets a
// chained plugin pass prevResult through; 0.1.0/0.2.0 results (ip4/ip6) are not supported.
inline constexpr std::array<std::string_view, 4> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0",
                                                                       "1.0.0"};
// CHECK exists from 0.4.0 on.
inline constexpr std::string_view kFirstVersionWithCheck = "0.4.0";
// The version errors are reported in when the configuration's own version is unusable.
inline constexpr std::string_view kNewestVersion = "1.0.0";

// Node agent socket (ARCHITECTURE.md, node-sock contract v1).
inline constexpr std::string_view kDefaultNodeSocket = "/var/run/rdmesh/node.sock";
inline constexpr const char* kNodeSocketEnv = "RDMESH_NODE_SOCKET";
inline constexpr int kDefaultAgentTimeoutMs = 10000;
inline constexpr int kMaxAgentTimeoutMs = 120000;

}  // namespace rdmesh::cni
