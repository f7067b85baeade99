// File descriptors riding on a message (SCM_RIGHTS), for node.sock's two ends.
#pragma once

#include <sys/socket.h>

#include <span>
#include <string_view>
#include <vector>

namespace rdmesh {

inline constexpr size_t kMaxPassedFds = 16;

// One sendmsg of `data` with `fds` attached (at most kMaxPassedFds; the caller keeps them).
// Returns what sendmsg returns (-1 with errno set; EINVAL for too many fds).
ssize_t sendDatagramWithFds(int fd, std::string_view data, std::span<const int> fds, int flags);

// The descriptors of every SCM_RIGHTS record of a received message; the caller owns them.
std::vector<int> passedFds(const msghdr& msg);

}  // namespace rdmesh
