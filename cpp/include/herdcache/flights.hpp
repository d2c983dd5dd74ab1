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

  // `make` is called (under the table lock) only when this caller becomes the leader.
  template <class Make>
  Joined join(std::string_view key, Make&& make) {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it != flights_.end()) {
      ++it->second.followers;
      return {false, it->second.handle, it->second.id};
    }
    Flight flight{make(), ++next_id_, 0};
    auto [pos, inserted] = flights_.emplace(std::string(key), std::move(flight));
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
    std::lock_guard lock(mutex_);
    auto it = flights_.find(std::string(key));
    if (it == flights_.end() || it->second.id != id) return false;
    if (it->second.followers > 0) return true;
    flights_.erase(it);
    return false;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return flights_.size();
  }

 private:
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
