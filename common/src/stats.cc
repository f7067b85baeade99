#include "rdmesh/common/stats.h"

#include <fmt/format.h>

namespace rdmesh {

Stat& StatsStore::getOrCreate(const std::string& scope, const std::string& name, StatKind kind) {
  std::string full = fmt::format("rdmesh.{}.{}", scope, name);
  std::lock_guard lock(mu_);
  auto it = stats_.find(full);
  if (it == stats_.end()) {
    it = stats_.emplace(full, std::make_unique<Stat>(full, kind)).first;
  }
  return *it->second;
}

Stat& StatsStore::counter(const std::string& scope, const std::string& name) {
  return getOrCreate(scope, name, StatKind::kCounter);
}

Stat& StatsStore::gauge(const std::string& scope, const std::string& name) {
  return getOrCreate(scope, name, StatKind::kGauge);
}

void StatsStore::setText(const std::string& scope, const std::string& name,
                         const std::string& value) {
  std::lock_guard lock(mu_);
  texts_[fmt::format("rdmesh.{}.{}", scope, name)] = value;
}

StatsStore::Snapshot StatsStore::snapshot() const {
  Snapshot snap;
  std::lock_guard lock(mu_);
  snap.numbers.reserve(stats_.size());
  for (const auto& [name, stat] : stats_) {
    snap.numbers.push_back({name, stat->kind(), stat->value()});
  }
  snap.texts = texts_;
  return snap;
}

std::string StatsStore::renderText(const std::string& filter) const {
  Snapshot snap = snapshot();
  std::string out;
  for (const auto& e : snap.numbers) {
    if (filter.empty() || e.name.find(filter) != std::string::npos) {
      out += fmt::format("{}: {}\n", e.name, static_cast<int64_t>(e.value));
    }
  }
  for (const auto& [name, text] : snap.texts) {
    if (filter.empty() || name.find(filter) != std::string::npos) {
      out += fmt::format("{}: \"{}\"\n", name, text);
    }
  }
  return out;
}

namespace {
std::string prometheusName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) c = '_';
  }
  return out;
}

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
}  // namespace

std::string StatsStore::renderPrometheus() const {
  Snapshot snap = snapshot();
  std::string out;
  for (const auto& e : snap.numbers) {
    std::string n = prometheusName(e.name);
    out += fmt::format("# TYPE {} {}\n{} {}\n", n, e.kind == StatKind::kCounter ? "counter" : "gauge",
                       n, static_cast<int64_t>(e.value));
  }
  // Text values become info-style gauges with the text as a label.
  for (const auto& [name, text] : snap.texts) {
    std::string n = prometheusName(name);
    out += fmt::format("# TYPE {} gauge\n{}{{value=\"{}\"}} 1\n", n, n, escapeLabel(text));
  }
  return out;
}

}  // namespace rdmesh
