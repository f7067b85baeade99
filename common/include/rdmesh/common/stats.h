// Stats: declared once, named rdmesh.<scope>.<name>, updated lock-free from any worker thread,
// read by the admin endpoint on the main thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rdmesh {

enum class StatKind { kCounter, kGauge };

class Stat {
 public:
  Stat(std::string name, StatKind kind) : name_(std::move(name)), kind_(kind) {}
  const std::string& name() const { return name_; }
  StatKind kind() const { return kind_; }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(uint64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(uint64_t v) { value_.store(v, std::memory_order_relaxed); }

 private:
  std::string name_;
  StatKind kind_;
  std::atomic<uint64_t> value_{0};
};
using Counter = Stat;
using Gauge = Stat;

// Owns every stat of a process. Creating a stat takes a lock (rare: per listener, cluster,
// session); updating one never does. Stats live as long as the store.
class StatsStore {
 public:
  // Full name is "rdmesh.<scope>.<name>". Returns the existing stat if already declared.
  Stat& counter(const std::string& scope, const std::string& name);
  Stat& gauge(const std::string& scope, const std::string& name);

  // Text values keyed by name (e.g. the fabric kind of a session), shown in /stats.
  void setText(const std::string& scope, const std::string& name, const std::string& value);

  struct Snapshot {
    struct Entry {
      std::string name;
      StatKind kind;
      uint64_t value;
    };
    std::vector<Entry> numbers;                // sorted by name
    std::map<std::string, std::string> texts;  // sorted by name
  };
  Snapshot snapshot() const;

  // "name: value" lines, sorted; optional substring filter.
  std::string renderText(const std::string& filter = "") const;
  // Prometheus text exposition format 0.0.4: dots become underscores, TYPE lines included.
  std::string renderPrometheus() const;

 private:
  Stat& getOrCreate(const std::string& scope, const std::string& name, StatKind kind);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Stat>> stats_;
  std::map<std::string, std::string> texts_;
};

}  // namespace rdmesh
