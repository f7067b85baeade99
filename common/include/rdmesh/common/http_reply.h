// Replies for the small evhttp servers (the sidecar's admin endpoint, rdmesh-xds's webhook):
// one place for the headers every reply carries and for libevent's HEAD quirk.
#pragma once

#include <string_view>

struct evhttp_request;
struct evhttp;

namespace rdmesh::http {

inline constexpr const char* kTextPlain = "text/plain; charset=UTF-8";
inline constexpr const char* kJson = "application/json";

// Sends `body` with Content-Type, no caching and nosniff. A HEAD request gets only the length.
void reply(evhttp_request* request, int code, const char* reason, const char* content_type,
           std::string_view body);
// 405 with an Allow header naming `allowed`.
void replyMethodNotAllowed(evhttp_request* request, const char* allowed);
// The request's path ("/" when empty).
std::string_view requestPath(evhttp_request* request);
// Lets every method through to the handler, so a wrong one gets the handler's 405 rather than
// libevent's 501.
void allowAllMethods(evhttp* http);

}  // namespace rdmesh::http
