#include "rdmesh/common/http_reply.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fmt/format.h>

#include <string>

namespace rdmesh::http {

void reply(evhttp_request* request, int code, const char* reason, const char* content_type,
           std::string_view body) {
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", content_type);
  // Stats and admission answers change from one request to the next; never cache them.
  evhttp_add_header(headers, "Cache-Control", "no-cache, max-age=0");
  evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
  evbuffer* buffer = evbuffer_new();
  if (buffer == nullptr) {
    evhttp_send_error(request, HTTP_INTERNAL, nullptr);
    return;
  }
  if (evhttp_request_get_command(request) == EVHTTP_REQ_HEAD) {
    // libevent 2.1 would send the body after a HEAD reply, which breaks keep-alive clients: send
    // only the length the GET body would have.
    evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
  } else {
    evbuffer_add(buffer, body.data(), body.size());
  }
  evhttp_send_reply(request, code, reason, buffer);
  evbuffer_free(buffer);
}

void replyMethodNotAllowed(evhttp_request* request, const char* allowed) {
  evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", allowed);
  reply(request, HTTP_BADMETHOD, "Method Not Allowed", kTextPlain,
        fmt::format("method not allowed; use {}\n", allowed));
}

std::string_view requestPath(evhttp_request* request) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  return raw_path != nullptr && raw_path[0] != '\0' ? raw_path : "/";
}

void allowAllMethods(evhttp* http) {
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                       EVHTTP_REQ_PATCH);
}

}  // namespace rdmesh::http
