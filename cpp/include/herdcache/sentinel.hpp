// Redis Sentinel: which server is the master of a service, kept current.
//
// The pure half (no I/O; tested on replies and bytes): what SENTINEL
// get-master-addr-by-name, ROLE and a +switch-master message say, and the order the
// sentinels are asked in (the one that answered last first, as redis-py does).
//
// SentinelResolver is the I/O half, on a thread of its own. A round asks the sentinels in
// turn for the master's address (with the sentinels' AUTH when the URL gives
// sentinel_password), connects to that address with the master's credentials and checks
// with ROLE that it is a master; the first address that passes is the master. Between
// rounds it stays subscribed to +switch-master on one sentinel (kept honest by a PING every
// health_interval_ms; a drop or an unanswered PING moves it to the next sentinel, and
// starts a round: a switch may have gone unheard), and a switch of its service starts a
// round at once, which checks the announced address first (other sentinels may name the
// old master for a moment longer, and it answers ROLE as a master until it is demoted). A round also runs when a connection reports the master suspect
// (a failed connection, a READONLY reply), at most every kSuspectGapMs; a round that finds
// no master is retried with the client's backoff.
//
// What master() says after a round: the verified master; none when a sentinel answered
// but no address it named passed ROLE (the old master during a failover); unchanged when
// no sentinel answered (the master may be fine while the sentinels are not). Every change
// is announced to the watchers (the command and subscriber connections), which drop a
// connection to any other address and reconnect.
//
// Each step of a round (a connect, a reply) is bounded by connect_timeout_ms; close()
// interrupts a round.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/master_address.hpp"
#include "herdcache/redis.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/resp.hpp"

namespace herdcache {

// SENTINEL get-master-addr-by-name's reply: [host, port]; nullopt for nil (the sentinel
// does not monitor that service). Throws ProtocolError on anything else, with the error
// text of an error reply.
std::optional<MasterAddress> parse_master_address(const Reply& reply);
// ROLE's reply says "master" (the first element).
bool is_master_role(const Reply& reply);
// The new master in a +switch-master payload ("<name> <old-ip> <old-port> <new-ip>
// <new-port>") when it is about `service`; nullopt for another service or a malformed one.
std::optional<MasterAddress> parse_switch_master(std::string_view payload, std::string_view service);

// What master() says after a round (see the top): the verified address; none when a
// sentinel answered but no address it named passed ROLE; `previous` when none answered.
std::optional<MasterAddress> master_after_round(const std::optional<MasterAddress>& verified, bool answered,
                                                const std::optional<MasterAddress>& previous);

// The order to ask `count` sentinels in: the URL's order at first, then whichever answered
// last moves to the front.
class SentinelOrder {
 public:
  explicit SentinelOrder(std::size_t count);
  std::size_t size() const noexcept { return order_.size(); }
  std::size_t at(std::size_t i) const { return order_.at(i); }  // the i-th to ask
  void answered(std::size_t sentinel);  // the index in the URL's list

 private:
  std::vector<std::size_t> order_;
};

struct SentinelStats {
  std::string master;             // the verified master, "host:port"; empty while none
  std::uint64_t failovers = 0;    // times a verified master replaced another one
  std::uint64_t rounds = 0;       // times the sentinels were asked
  std::string listening_on;       // the sentinel whose +switch-master is followed; empty: none
  std::string last_error;         // why the last round found no master (empty: it did)
};

class SentinelResolver {
 public:
  static constexpr std::int64_t kSuspectGapMs = 50;  // at most one suspect-driven round per gap

  // Starts the thread, which runs a first round at once. `url` must be a sentinel URL.
  SentinelResolver(RedisUrl url, RedisOptions options, std::shared_ptr<const Clock> clock = system_clock());
  ~SentinelResolver();  // close()
  SentinelResolver(const SentinelResolver&) = delete;
  SentinelResolver& operator=(const SentinelResolver&) = delete;

  // The master as a URL to connect to (the URL aimed at it); nullopt while none is known.
  std::optional<RedisUrl> master() const;
  // Whether a round has ended (before it, no master means "ask again soon", not "none").
  bool settled() const;
  // A connection to the master failed or answered READONLY: ask the sentinels again soon.
  void suspect();
  // `on_change` is called on the resolver's thread after every change of master(); it
  // must be short and must not throw. unwatch(id) returns once it can no longer run.
  std::uint64_t watch(std::function<void()> on_change);
  void unwatch(std::uint64_t id);

  SentinelStats stats() const;  // any thread
  const RedisUrl& url() const noexcept;
  void close();  // stops and joins the thread; idempotent

  class Impl;  // sentinel.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

// How one connection (the client's, the subscriber's) follows the master: the address to
// connect to next, and an fd for its poll() that turns readable when the master changes.
// For a URL that does not use Sentinel it is inert: target() is the URL, fd() is -1.
class MasterFollower {
 public:
  // `resolver` is shared by the connections of one tier; null with a sentinel URL: a
  // resolver of this connection's own is started.
  MasterFollower(const RedisUrl& url, std::shared_ptr<SentinelResolver> resolver, const RedisOptions& options,
                 std::shared_ptr<const Clock> clock);
  ~MasterFollower();  // stops watching (before the connection's thread is gone)
  MasterFollower(const MasterFollower&) = delete;
  MasterFollower& operator=(const MasterFollower&) = delete;

  struct Target {
    std::optional<RedisUrl> url;  // where to connect; nullopt: no master known now
    bool wait = false;            // no master yet because the first round has not ended
    std::string why;              // when nullopt: the resolver's last error
  };
  Target target() const;

  int fd() const noexcept { return resolver_ ? changed_.fd() : -1; }
  // After fd() was readable: clears it. Whether `connected_to` (a master URL) is no
  // longer the master.
  bool moved_from(const RedisUrl& connected_to);
  // A connection to the master failed or answered READONLY (the reply text): ask again.
  void suspect() {
    if (resolver_) resolver_->suspect();
  }
  const SentinelResolver* resolver() const noexcept { return resolver_.get(); }

 private:
  RedisUrl url_;
  std::shared_ptr<SentinelResolver> resolver_;
  EventFd changed_;
  std::uint64_t watch_id_ = 0;
};

// A Redis error reply saying the server is a replica now ("READONLY You can't write
// against a read only replica", also inside a script's error).
bool is_readonly_error(const Reply& reply) noexcept;

}  // namespace herdcache
