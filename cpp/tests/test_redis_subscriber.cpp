// RedisSubscriber against a real redis-server: messages, run-time channels, and the
// "messages may have been missed" report after the server restarts.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "herdcache/redis.hpp"
#include "herdcache/redis_subscriber.hpp"
#include "redis_server.hpp"

using herdcache::ConnectionEvent;
using herdcache::parse_redis_url;
using herdcache::RedisClient;
using herdcache::RedisOptions;
using herdcache::RedisSubscriber;
using herdcache::Reply;
using herdcache::testing::Observed;
using herdcache::testing::RedisServer;
using namespace std::chrono_literals;

namespace {

RedisOptions fast_options() {
  RedisOptions options;
  options.connect_timeout_ms = 1000;
  options.command_timeout_ms = 1000;
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 50;
  options.health_interval_ms = 100;
  return options;
}

using Message = std::pair<std::string, std::string>;

// Everything a subscriber reports, for the test to wait on.
struct Recorder {
  Observed<std::vector<Message>> messages;
  Observed<std::vector<ConnectionEvent>> events;

  RedisSubscriber::MessageCallback on_message() {
    return [this](const std::string& channel, const std::string& payload) {
      messages.update([&](auto& all) { all.emplace_back(channel, payload); });
    };
  }
  RedisSubscriber::EventCallback on_event() {
    return [this](const ConnectionEvent& event) {
      events.update([&](auto& all) { all.push_back(event); });
    };
  }
  ConnectionEvent wait_event(std::size_t count, std::chrono::milliseconds timeout = 5s) {
    REQUIRE(events.wait_for([&](const auto& all) { return all.size() >= count; }, timeout));
    return events.get()[count - 1];
  }
  void wait_messages(std::size_t count) {
    REQUIRE(messages.wait_for([&](const auto& all) { return all.size() >= count; }, 5s));
  }
};

// PUBLISH; returns how many subscribers Redis delivered it to.
std::int64_t publish(RedisClient& client, const std::string& channel, const std::string& payload) {
  return client.execute({"PUBLISH", channel, payload}).reply().as_int();
}

}  // namespace

TEST_CASE("redis: subscriber receives PUBLISH and reports a reconnect after a restart",
          "[redis][subscriber]") {
  RedisServer server;
  Recorder recorder;
  RedisSubscriber subscriber(parse_redis_url(server.url()), fast_options(),
                             {"herd:inval", "other"}, recorder.on_message(), recorder.on_event());
  const ConnectionEvent first = recorder.wait_event(1);
  CHECK(first.connected);
  CHECK_FALSE(first.after_loss);  // nothing missed yet
  CHECK(subscriber.connected());

  RedisClient client(parse_redis_url(server.url()), fast_options());
  const std::string binary("k\0\r\nx", 5);
  CHECK(publish(client, "herd:inval", binary) == 1);  // the subscription is confirmed
  CHECK(publish(client, "unrelated", "no") == 0);
  CHECK(publish(client, "other", "") == 1);
  recorder.wait_messages(2);
  CHECK(recorder.messages.get() ==
        std::vector<Message>{{"herd:inval", binary}, {"other", ""}});

  server.kill(SIGKILL);
  const ConnectionEvent lost = recorder.wait_event(2);
  CHECK_FALSE(lost.connected);
  CHECK_FALSE(subscriber.connected());

  server.start();  // same port: the subscriber comes back by itself and subscribes again
  const ConnectionEvent back = recorder.wait_event(3);
  CHECK(back.connected);
  CHECK(back.after_loss);  // "messages may have been missed": flush the memory tier
  RedisClient fresh(parse_redis_url(server.url()), fast_options());  // no reconnect wait
  CHECK(publish(fresh, "herd:inval", "after restart") == 1);
  recorder.wait_messages(3);
  CHECK(recorder.messages.get().back() == Message{"herd:inval", "after restart"});
  CHECK(recorder.events.get().size() == 3);  // once per change, no more
}

TEST_CASE("redis: subscriber channels change at run time", "[redis][subscriber]") {
  RedisServer server({"--requirepass", "pw"});
  const std::string url = "redis://:pw@127.0.0.1:" + std::to_string(server.port()) + "/2";
  Recorder recorder;
  RedisSubscriber subscriber(parse_redis_url(url), fast_options(), {}, recorder.on_message(),
                             recorder.on_event());
  CHECK(recorder.wait_event(1).connected);  // no channels yet: ready after the handshake

  RedisClient client(parse_redis_url(url), fast_options());
  subscriber.subscribe("a");
  // Unconfirmed by design: wait until Redis counts the subscriber on the channel.
  auto subscribers_of = [&](const std::string& channel) {
    return client.execute({"PUBSUB", "NUMSUB", channel}).reply().elements().at(1).as_int();
  };
  for (int i = 0; i < 1000 && subscribers_of("a") == 0; ++i) {
    CHECK(client.execute({"PING"}).ok());  // one round trip per check: bounded, not a sleep
  }
  REQUIRE(publish(client, "a", "1") == 1);
  subscriber.unsubscribe("a");
  subscriber.subscribe("b");
  for (int i = 0; i < 1000 && subscribers_of("b") == 0; ++i) CHECK(client.execute({"PING"}).ok());
  CHECK(subscribers_of("a") == 0);
  REQUIRE(publish(client, "b", "2") == 1);
  recorder.wait_messages(2);
  CHECK(recorder.messages.get() == std::vector<Message>{{"a", "1"}, {"b", "2"}});

  subscriber.close();
  subscriber.close();
  CHECK_FALSE(subscriber.connected());
}
