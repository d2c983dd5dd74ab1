// A pub/sub subscriber on its own connection and I/O thread.
//
// It SUBSCRIBEs to a set of channels and hands each message (channel, payload) to a
// callback on its I/O thread. When the connection drops it reconnects with exponential
// backoff and full jitter (the same RedisOptions as the client: connect_timeout_ms,
// backoff_*_ms) and subscribes again to every channel.
//
// Pub/sub is fire-and-forget: whatever was published while the subscriber was not
// subscribed is gone. So every time the subscription is (re)established after a failure,
// the event callback gets ConnectionEvent{connected = true, after_loss = true}: "messages
// may have been missed". The layer above flushes its memory tier then (the rule Redis'
// own client-side caching documents). The first subscription after start has
// after_loss = false unless earlier attempts failed.
//
// Liveness: every health_interval_ms a PING (allowed in subscribed mode) must be answered
// within command_timeout_ms, or the connection is presumed dead and replaced; a silent
// subscriber is otherwise indistinguishable from one with nothing to hear.
//
// Sentinel: as the client (redis.hpp), it subscribes on the master the resolver names and
// moves when it changes; the move is a loss (after_loss): the new master did not carry
// what the old one published.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/redis.hpp"
#include "herdcache/redis_url.hpp"

namespace herdcache {

class RedisSubscriber {
 public:
  // Called on the I/O thread, in arrival order; must not throw.
  using MessageCallback = std::function<void(const std::string& channel, const std::string& payload)>;
  using EventCallback = std::function<void(const ConnectionEvent&)>;

  // Starts the I/O thread, which connects and subscribes to `channels` at once. The
  // Connected event is reported after Redis has confirmed every one of them.
  RedisSubscriber(RedisUrl url, RedisOptions options, std::vector<std::string> channels,
                  MessageCallback on_message, EventCallback on_event = {},
                  std::shared_ptr<const Clock> clock = system_clock(),
                  std::shared_ptr<SentinelResolver> sentinel = nullptr);
  ~RedisSubscriber();  // close()
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  // Adds or removes channels at run time (any thread). Kept across reconnects.
  // Unconfirmed: messages published right after subscribe() returns may not be seen.
  void subscribe(std::string channel);
  void unsubscribe(std::string channel);

  // Subscribed and listening right now (any thread).
  bool connected() const noexcept;

  // Stops and joins the I/O thread. Idempotent; not from a callback.
  void close();

  class Impl;  // redis_subscriber.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace herdcache
