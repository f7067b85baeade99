#include "registry.h"

namespace rdmesh::xds_server {

Registry::Registry(event_base* loop, std::unique_ptr<RegistryStore> store)
    : store_(std::move(store)), tasks_(loop) {
  // Any thread: post at most one delivery at a time; it reads the latest snapshot when it runs,
  // so a burst of revisions costs one wake-up.
  store_->setOnChange([this](const SnapshotPtr&) {
    if (!delivery_pending_.exchange(true)) tasks_.post([this] { deliverLatest(); });
  });
}

Registry::~Registry() {
  stop();
}

void Registry::addSource(std::unique_ptr<RegistrySource> source) {
  sources_.push_back(std::move(source));
}

Status Registry::start() {
  if (Status status = store_->start(); !status.isOk()) return status;
  for (auto& source : sources_) {
    Status status = source->start(*this, [this] { synced_sources_.fetch_add(1); });
    if (!status.isOk()) return status;
  }
  started_ = true;
  return Status::ok();
}

void Registry::stop() {
  for (auto& source : sources_) source->stop();
  store_->stop();
}

std::string Registry::describe() const {
  std::string text = "store " + store_->describe();
  for (const auto& source : sources_) text += ", " + source->describe();
  return text;
}

void Registry::deliverLatest() {
  delivery_pending_.store(false);
  if (on_change_) on_change_(store_->snapshot());
}

}  // namespace rdmesh::xds_server
