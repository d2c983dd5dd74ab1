// Connection state changes as the layers above see them: reported once per change, with
// "after a loss" on a reconnect (a subscriber's cue that messages may have been missed).
// Shared by every connection the engine keeps (Redis client and subscriber, PostgreSQL
// listener); called on their I/O threads only.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace herdcache {

struct ConnectionEvent {
  bool connected = false;   // true: connected and ready; false: lost, or cannot connect
  bool after_loss = false;  // connected after being down (lost, or earlier attempts
                            // failed): for a subscriber, messages may have been missed
  std::string detail;       // why it is down; the address when connected
};

class ConnectionReporter {
 public:
  using Callback = std::function<void(const ConnectionEvent&)>;

  explicit ConnectionReporter(Callback on_event) : on_event_(std::move(on_event)) {}

  // Ready: reported if it was not already, after_loss if anything failed since the last time.
  void up(const std::string& detail) {
    report(true, detail);
    was_down_ = false;
  }
  // A connection or an attempt failed.
  void down(const std::string& why) {
    was_down_ = true;
    report(false, why);
  }

 private:
  void report(bool connected, const std::string& detail) {
    if (reported_ == connected) return;  // once per change
    reported_ = connected;
    if (!on_event_) return;
    on_event_(ConnectionEvent{connected, connected && was_down_, detail});
  }

  Callback on_event_;
  bool was_down_ = false;
  std::optional<bool> reported_;
};

}  // namespace herdcache
