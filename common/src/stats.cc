#include "rdmesh/common/stats.h"

#include <fmt/format.h>

#include <set>

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

namespace {
// Counters only grow, so print them unsigned; a gauge that went below zero prints negative.
std::string formatValue(StatKind kind, uint64_t value) {
  return kind == StatKind::kCounter ? fmt::format("{}", value)
                                    : fmt::format("{}", static_cast<int64_t>(value));
}

// Keeps a text value on one line so that "name: value" output stays line-oriented.
std::string escapeQuoted(const std::string& v) {
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

std::string prometheusName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) c = '_';
  }
  return out;
}
}  // namespace

std::string StatsStore::renderText(const std::string& filter) const {
  Snapshot snap = snapshot();
  auto wanted = [&](const std::string& name) {
    return filter.empty() || name.find(filter) != std::string::npos;
  };
  // Both lists are sorted: merge them so the whole output is sorted by name (easy to diff/grep).
  std::string out;
  auto number = snap.numbers.begin();
  auto text = snap.texts.begin();
  while (number != snap.numbers.end() || text != snap.texts.end()) {
    bool take_number =
        text == snap.texts.end() || (number != snap.numbers.end() && number->name <= text->first);
    if (take_number) {
      if (wanted(number->name)) {
        out += fmt::format("{}: {}\n", number->name, formatValue(number->kind, number->value));
      }
      ++number;
    } else {
      if (wanted(text->first)) {
        out += fmt::format("{}: \"{}\"\n", text->first, escapeQuoted(text->second));
      }
      ++text;
    }
  }
  return out;
}

std::string StatsStore::renderPrometheus() const {
  Snapshot snap = snapshot();
  std::string out;
  // Two names can map to one metric ("a.b-c" and "a.b_c"); a second TYPE line for a metric makes
  // Prometheus reject the whole scrape, so the first one wins.
  std::set<std::string> emitted;
  for (const auto& e : snap.numbers) {
    std::string n = prometheusName(e.name);
    if (!emitted.insert(n).second) continue;
    out +=
        fmt::format("# TYPE {} {}\n{} {}\n", n, e.kind == StatKind::kCounter ? "counter" : "gauge",
                    n, formatValue(e.kind, e.value));
  }
  // Text values become info-style gauges with the text as a label.
  for (const auto& [name, text] : snap.texts) {
    std::string n = prometheusName(name);
    if (!emitted.insert(n).second) continue;
    out += fmt::format("# TYPE {} gauge\n{}{{value=\"{}\"}} 1\n", n, n, escapeQuoted(text));
  }
  return out;
}

}  // namespace rdmesh
