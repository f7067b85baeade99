#include "k8s_api_config.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rdmesh::xds::k8s {
namespace {

Result<std::string> readSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return unavailable(fmt::format("cannot read {}", path));
  std::ostringstream text;
  text << in.rdbuf();
  std::string content = text.str();
  while (!content.empty() &&
         (content.back() == '\n' || content.back() == '\r' || content.back() == ' ')) {
    content.pop_back();
  }
  return content;
}

}  // namespace

Result<ApiConfig> ApiConfig::inCluster(const std::string& service_account_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0') {
    return invalidArgument(
        "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST unset); give "
        "--kubernetes-url instead");
  }
  std::string host_text = host;
  if (host_text.find(':') != std::string::npos) host_text = "[" + host_text + "]";
  std::string url =
      fmt::format("https://{}:{}", host_text, port != nullptr && *port ? port : "443");
  return fromUrl(url, service_account_dir + "/token", service_account_dir + "/ca.crt");
}

Result<ApiConfig> ApiConfig::fromUrl(const std::string& url, const std::string& token_file,
                                     const std::string& ca_file) {
  auto endpoint = parseHttpUrl(url);
  if (!endpoint) return invalidArgument("Kubernetes API URL: " + endpoint.status().message());
  ApiConfig config;
  config.endpoint = std::move(*endpoint);
  config.endpoint.ca_file = ca_file;
  config.token_file = token_file;
  if (!token_file.empty()) {
    auto token = config.authorization();
    if (!token) return token.status();
  }
  return config;
}

Result<std::string> ApiConfig::authorization() const {
  if (token_file.empty()) return std::string();
  auto token = readSmallFile(token_file);
  if (!token) return token.status();
  if (token->empty()) return invalidArgument(fmt::format("token file {} is empty", token_file));
  return "Bearer " + *token;
}

}  // namespace rdmesh::xds::k8s
