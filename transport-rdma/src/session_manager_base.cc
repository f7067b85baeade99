#include "session_manager_base.h"

namespace rdmesh::transport {

SessionManagerBase::SessionManagerBase(event_base* base, StatsStore& stats,
                                       AcceptHandler on_accept, SessionOptions session_options,
                                       std::chrono::milliseconds connect_timeout)
    : base_(base),
      stats_(stats),
      on_accept_(std::move(on_accept)),
      session_options_(std::move(session_options)),
      connect_timeout_(connect_timeout),
      jobs_(std::make_unique<BlockingJobs>(base)) {}

SessionManagerBase::~SessionManagerBase() {
  joinBootstrapThreads();
}

// Each job is bounded by connect_timeout, so this waits at most that long.
void SessionManagerBase::joinBootstrapThreads() {
  jobs_.reset();
}

std::unique_ptr<SessionImpl> SessionManagerBase::makeSession(const std::string& name) {
  auto session = std::make_unique<SessionImpl>(base_, name, session_options_, stats_, on_accept_);
  sessions_.push_back(session.get());
  return session;
}

size_t SessionManagerBase::activeStreams() const {
  size_t n = 0;
  for (SessionImpl* s : sessions_) n += s->activeStreams();
  return n;
}

bool SessionManagerBase::poll() {
  bool work = false;
  for (SessionImpl* s : sessions_) {
    if (s->wantsPoll()) work |= s->pollOnce();
  }
  return work;
}

void SessionManagerBase::flush() {
  for (SessionImpl* s : sessions_) s->flush();
}

bool SessionManagerBase::spinWorthwhile() const {
  for (SessionImpl* s : sessions_) {
    if (s->pollsUsefully()) return true;
  }
  return false;
}

bool SessionManagerBase::prepareToSleep() {
  bool ok = true;
  for (SessionImpl* s : sessions_) ok &= s->prepareToSleep();
  return ok;
}

void SessionManagerBase::markAwake() {
  for (SessionImpl* s : sessions_) s->markAwake();
}

}  // namespace rdmesh::transport
