// A client's state as JSON, the same for every owner (rdmesh-proxy's /config_dump "dynamic"
// section, rdmesh-node's "xds" op): server, connected, last_error, and per subscribed type the
// version in force, last nonce, updates/acks/nacks and the last rejection. `Json` is
// nlohmann::json or nlohmann::ordered_json, whichever the owner's document uses.
#pragma once

#include <string>

#include "rdmesh/xds/client.h"

namespace rdmesh::xds {

template <typename Json>
Json clientStatusJson(const Client* client) {
  Json types = Json::array();
  if (client != nullptr) {
    for (const TypeStatus& s : client->status()) {
      Json entry = {{"type_url", std::string(typeUrl(s.type))},
                    {"version", s.acked_version},
                    {"last_nonce", s.last_nonce},
                    {"updates", s.updates},
                    {"acks", s.acks},
                    {"nacks", s.nacks}};
      if (s.nacks > 0) {
        entry["last_rejected"] = {{"version", s.rejected_version}, {"message", s.rejected_message}};
      }
      types.push_back(std::move(entry));
    }
  }
  return Json{{"server", client != nullptr ? client->server() : ""},
              {"connected", client != nullptr && client->connected()},
              {"last_error", client != nullptr ? client->lastError() : ""},
              {"resources", std::move(types)}};
}

}  // namespace rdmesh::xds
