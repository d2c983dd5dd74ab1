// In-process request coalescing: one flight per key. The first caller becomes the leader
// and gets a fresh handle (in production a future the bindings create); every later caller
// for the same key gets the same handle and waits on it. The leader finishes the flight,
// which removes it, and then completes the handle with its value or its exception, so an
// exception reaches every follower and nothing is cached.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace herdcache {

template <class Handle>
class FlightTable {
 public:
  struct Joined {
    bool leader;
    Handle handle;
    std::uint64_t id;  // identifies the flight to finish()
  };

  // `make` is called only when this caller may become the leader, and never under the
  // table's lock: in the bindings it runs Python code, which may let another thread take
  // the GIL, and that thread may be waiting for this lock. So the table is checked, `make`
  // runs unlocked, and the table is checked again: a caller that lost the race in between
  // follows the winner's flight, and its own handle is dropped (after the lock is released,
  // as every handle the table lets go of is: destroying one may run code too).
  template <class Make>
  Joined join(std::string_view key, Make&& make) {
    if (auto joined = follow(key)) return std::move(*joined);
    Handle made = make();
    std::optional<Handle> lost;  // destroyed after the lock below is released
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it != flights_.end()) {
      ++it->second.followers;
      lost.emplace(std::move(made));
      return {false, it->second.handle, it->second.id};
    }
    auto [pos, inserted] = flights_.emplace(std::string(key), Flight{std::move(made), ++next_id_, 0});
    return {true, pos->second.handle, pos->second.id};
  }

  // The flight for `key`, if one is in the air (SWR: "is a refresh already running?").
  bool in_flight(std::string_view key) const {
    std::lock_guard lock(mutex_);
    return flights_.count(std::string(key)) != 0;
  }

  // Removes the flight if it is still flight `id`; returns its handle and follower count.
  // A flight that was already finished (or replaced) yields nothing.
  std::optional<std::pair<Handle, std::uint64_t>> finish(std::string_view key, std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it == flights_.end() || it->second.id != id) return std::nullopt;
    auto out = std::make_pair(std::move(it->second.handle), it->second.followers);
    flights_.erase(it);
    return out;
  }

  // Removes flight `id` unless callers follow it; true when it has followers (and stays,
  // for its leader to hand over: a cancelled leader's load starts over for them).
  bool abandon(std::string_view key, std::uint64_t id) {
    std::optional<Handle> dropped;  // destroyed after the lock below is released
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it == flights_.end() || it->second.id != id) return false;
    if (it->second.followers > 0) return true;
    dropped.emplace(std::move(it->second.handle));
    flights_.erase(it);
    return false;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return flights_.size();
  }

 private:
  std::optional<Joined> follow(std::string_view key) {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it == flights_.end()) return std::nullopt;
    ++it->second.followers;
    return Joined{false, it->second.handle, it->second.id};
  }

  struct Flight {
    Handle handle;
    std::uint64_t id;
    std::uint64_t followers;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Flight> flights_;
  std::uint64_t next_id_ = 0;
};

}  // namespace herdcache
