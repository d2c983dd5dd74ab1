// The cluster slot map from CLUSTER SLOTS replies, and MOVED/ASK redirections: replies
// written as the cluster specification (and the CLUSTER SLOTS command page) gives them,
// through the real RESP parser.
#include <catch2/catch.hpp>

#include <string>

#include <fmt/format.h>

#include "herdcache/cluster_map.hpp"
#include "herdcache/resp.hpp"
#include "reply_bytes.hpp"

using namespace herdcache;
using Catch::Matchers::Contains;

namespace {

Reply parse(std::string_view bytes) { return parse_reply(bytes); }

std::string bulk(std::string_view s) { return fmt::format("${}\r\n{}\r\n", s.size(), s); }
// A Redis 7 node: [endpoint, port, id, metadata]; `endpoint` is RESP already (bulk or nil).
std::string node7(const std::string& endpoint, int port, std::string_view id, const std::string& meta = "*0\r\n") {
  return fmt::format("*4\r\n{}:{}\r\n{}{}", endpoint, port, bulk(id), meta);
}
std::string range(int start, int end, const std::string& nodes, int count) {
  return fmt::format("*{}\r\n:{}\r\n:{}\r\n{}", count + 2, start, end, nodes);
}

// The 3-master, 3-replica layout redis-cli --cluster create makes.
const std::string kThreeMasters =
    "*3\r\n" +
    range(0, 5460, node7(bulk("10.0.0.1"), 7000, "a1") + node7(bulk("10.0.0.4"), 7003, "b1"), 2) +
    range(5461, 10922, node7(bulk("10.0.0.2"), 7001, "a2") + node7(bulk("10.0.0.5"), 7004, "b2"), 2) +
    range(10923, 16383, node7(bulk("10.0.0.3"), 7002, "a3") + node7(bulk("10.0.0.6"), 7005, "b3"), 2);

}  // namespace

TEST_CASE("cluster_map: three masters, every slot to the master of its range", "[cluster_map]") {
  const ClusterMap map = parse_cluster_slots(parse(kThreeMasters), "seed");
  REQUIRE(map.masters().size() == 3);
  CHECK(map.masters()[0] == MasterAddress{"10.0.0.1", 7000});
  CHECK(map.masters()[1] == MasterAddress{"10.0.0.2", 7001});
  CHECK(map.masters()[2] == MasterAddress{"10.0.0.3", 7002});
  CHECK(map.complete());
  CHECK(map.master_of_slot(0) == 0u);
  CHECK(map.master_of_slot(5460) == 0u);
  CHECK(map.master_of_slot(5461) == 1u);
  CHECK(map.master_of_slot(10922) == 1u);
  CHECK(map.master_of_slot(10923) == 2u);
  CHECK(map.master_of_slot(16383) == 2u);
  CHECK_FALSE(map.master_of_slot(16384));
  // The specification's examples: "foo" is slot 12182, "bar" 5061, a tag routes as its content.
  CHECK(map.master_for("foo") == 2u);
  CHECK(map.master_for("bar") == 0u);
  CHECK(map.master_for("{bar}.lease") == 0u);
  CHECK(map == parse_cluster_slots(parse(kThreeMasters), "seed"));
}

TEST_CASE("cluster_map: Redis 3 nodes, split ranges of one master, and slots nobody serves", "[cluster_map]") {
  // [ip, port] only; one master owns 0-99 and 200-299 (the reply repeats it per range).
  const std::string reply = "*3\r\n" + range(0, 99, "*2\r\n" + bulk("h1") + ":7000\r\n", 1) +
                            range(100, 199, "*2\r\n" + bulk("h2") + ":7001\r\n", 1) +
                            range(200, 299, "*2\r\n" + bulk("h1") + ":7000\r\n", 1);
  const ClusterMap map = parse_cluster_slots(parse(reply), "seed");
  REQUIRE(map.masters().size() == 2);
  CHECK(map.master_of_slot(250) == 0u);
  CHECK(map.master_of_slot(150) == 1u);
  CHECK_FALSE(map.master_of_slot(300));
  CHECK(map.slots_served() == 300);
  CHECK_FALSE(map.complete());

  const ClusterMap none = parse_cluster_slots(parse("*0\r\n"), "seed");  // no slot assigned yet
  CHECK(none.masters().empty());
  CHECK(none.slots_served() == 0);
  CHECK_FALSE(none.master_for("foo"));
  CHECK(none == ClusterMap());
}

TEST_CASE("cluster_map: endpoints nil, empty, '?', IPv6 and hostnames", "[cluster_map]") {
  const auto master0 = [](const std::string& node) {
    return parse_cluster_slots(parse("*1\r\n" + range(0, 16383, node, 1)), "seed.example").masters().at(0);
  };
  // Unknown on purpose (cluster-preferred-endpoint-type unknown-endpoint): the host asked.
  CHECK(master0(node7("$-1\r\n", 7000, "a")) == MasterAddress{"seed.example", 7000});
  // The node does not know its own address (a one-node cluster): the host asked.
  CHECK(master0(node7(bulk(""), 7000, "a")) == MasterAddress{"seed.example", 7000});
  // A hostname is preferred but the node has none: the IP in its metadata.
  CHECK(master0(node7(bulk("?"), 7000, "a", "*2\r\n" + bulk("ip") + bulk("10.1.2.3"))) ==
        MasterAddress{"10.1.2.3", 7000});
  CHECK_THROWS_WITH(master0(node7(bulk("?"), 7000, "a")), Contains("no usable endpoint"));
  const MasterAddress v6 = master0(node7(bulk("::1"), 7000, "a"));
  CHECK(v6.host == "::1");
  CHECK(v6.str() == "[::1]:7000");
  CHECK(master0(node7(bulk("redis-0.svc"), 7000, "a", "*4\r\n" + bulk("ip") + bulk("10.1.2.3") + bulk("x") +
                                                       bulk("y"))) == MasterAddress{"redis-0.svc", 7000});
}

TEST_CASE("cluster_map: a malformed CLUSTER SLOTS reply is an error that says what is wrong", "[cluster_map]") {
  const auto slots = [](const std::string& bytes) { return parse_cluster_slots(parse(bytes), "seed"); };
  const std::string good = node7(bulk("h"), 7000, "a");
  CHECK_THROWS_WITH(slots("-ERR This instance has cluster support disabled\r\n"),
                    Contains("cluster support disabled"));
  CHECK_THROWS_WITH(slots("+OK\r\n"), Contains("not an array"));
  CHECK_THROWS_WITH(slots("*1\r\n*2\r\n:0\r\n:1\r\n"), Contains("range 0: not [start, end, master"));
  CHECK_THROWS_WITH(slots("*1\r\n:5\r\n"), Contains("range 0"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 16384, good, 1)), Contains("end slot is not 0..16383"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(-1, 5, good, 1)), Contains("start slot is not 0..16383"));
  CHECK_THROWS_WITH(slots("*1\r\n*3\r\n" + bulk("0") + ":5\r\n" + good), Contains("start slot"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(9, 5, good, 1)), Contains("start 9 > end 5"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 5, node7(bulk("h"), 0, "a"), 1)), Contains("not a port: 0"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 5, node7(bulk("h"), 65536, "a"), 1)), Contains("not a port"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 5, "*2\r\n" + bulk("h") + bulk("7000"), 1)), Contains("not a node"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 5, bulk("h:7000"), 1)), Contains("not a node"));
  CHECK_THROWS_WITH(slots("*1\r\n" + range(0, 5, node7(bulk("h x"), 7000, "a"), 1)), Contains("no usable endpoint"));
  CHECK_THROWS_WITH(slots("*2\r\n" + range(0, 10, good, 1) + range(10, 20, node7(bulk("g"), 7001, "b"), 1)),
                    Contains("slot 10 claimed by h:7000 and g:7001"));
}

TEST_CASE("cluster_map: MOVED and ASK name a slot and a node", "[cluster_map]") {
  auto r = parse_redirect("MOVED 3999 127.0.0.1:6381", "seed");
  REQUIRE(r);
  CHECK(*r == Redirect{Redirect::Kind::Moved, 3999, {"127.0.0.1", 6381}});
  r = parse_redirect("ASK 16383 10.0.0.2:7001", "seed");
  REQUIRE(r);
  CHECK(*r == Redirect{Redirect::Kind::Ask, 16383, {"10.0.0.2", 7001}});
  // IPv6 as Redis writes it (bare) and bracketed; an empty host is the host asked.
  CHECK(parse_redirect("MOVED 0 ::1:7000", "seed")->to == MasterAddress{"::1", 7000});
  CHECK(parse_redirect("MOVED 0 fe80::2:1:7000", "seed")->to == MasterAddress{"fe80::2:1", 7000});
  CHECK(parse_redirect("ASK 1 [::1]:7000", "seed")->to == MasterAddress{"::1", 7000});
  CHECK(parse_redirect("MOVED 3999 :6381", "seed.example")->to == MasterAddress{"seed.example", 6381});
  CHECK(parse_redirect("MOVED 3999 redis-1.svc:6381", "seed")->to.host == "redis-1.svc");
}

TEST_CASE("cluster_map: other errors are not redirections; a malformed one is an error", "[cluster_map]") {
  CHECK_FALSE(parse_redirect("ERR unknown command", "seed"));
  CHECK_FALSE(parse_redirect("CLUSTERDOWN The cluster is down", "seed"));
  CHECK_FALSE(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot", "seed"));
  CHECK_FALSE(parse_redirect("MOVEDX 1 h:1", "seed"));
  CHECK_FALSE(parse_redirect("", "seed"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 16384 h:1", "seed"), Contains("slot not in 0..16383"));
  CHECK_THROWS_WITH(parse_redirect("MOVED -1 h:1", "seed"), Contains("slot not in 0..16383"));
  CHECK_THROWS_WITH(parse_redirect("MOVED x h:1", "seed"), Contains("slot"));
  CHECK_THROWS_WITH(parse_redirect("ASK 1", "seed"), Contains("without an address"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 h", "seed"), Contains("without a port"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 h:0", "seed"), Contains("port not in 1..65535"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 h:1 extra", "seed"), Contains("port"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 [::1:7000", "seed"), Contains("[host]:port"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 ?:7000", "seed"), Contains("no usable host"));
  CHECK_THROWS_WITH(parse_redirect("MOVED 1 a]b:7000", "seed"), Contains("no usable host"));
  CHECK_THROWS_AS(parse_redirect("ASK 1 :7000", ""), ProtocolError);  // nothing to stand in for the host
}
