// The entry codec: stored fields, script replies and fill notices, as byte strings, become
// the hits (or forged misses) the engine sees; with a signing key only what this key
// sealed for exactly this entry key and these fields opens.
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "herdcache/compression.hpp"
#include "herdcache/entry_codec.hpp"

using namespace herdcache;

namespace {

const std::string kPayload("HC\x00[1,2]", 8);
const StoredFields kFields{"1700000060000", "1700000090000", "12", "org:1\nrooms", "ns#t:org:1\n3\n"};

// "<len>:<bytes>" for each field: the framing the write and release scripts publish.
std::string notice_of(const std::vector<std::string>& fields) {
  std::string out;
  for (const auto& f : fields) out += std::to_string(f.size()) + ":" + f;
  return out;
}

std::vector<std::string> notice_fields(const std::string& key, const std::string& v, const StoredFields& f) {
  return {key, v, std::string(f.f), std::string(f.s), std::string(f.d), std::string(f.t), std::string(f.x)};
}

void check_hit(const TierResult& r) {
  CHECK(r.status == TierResult::Status::Hit);
  CHECK(r.payload == kPayload);
  CHECK(r.fresh_until_wall == 1'700'000'060'000 * kNanosPerMs);
  CHECK(r.stale_until_wall == 1'700'000'090'000 * kNanosPerMs);
  CHECK(r.load_ns == 12 * kNanosPerMs);
  CHECK(r.tags == std::vector<std::string>{"org:1", "rooms"});
  CHECK_FALSE(r.forged);
}

}  // namespace

TEST_CASE("entry codec: text fields") {
  CHECK(parse_int("1700000060000") == 1'700'000'060'000);
  CHECK(parse_int("12ms") == 12);
  CHECK(parse_int("") == 0);
  CHECK(parse_int("x") == 0);
  CHECK(split_lines("") == std::vector<std::string>{});
  CHECK(split_lines("a") == std::vector<std::string>{"a"});
  CHECK(split_lines("a\n\nb") == std::vector<std::string>{"a", "", "b"});
  CHECK(join_lines({}) == "");
  CHECK(join_lines({"a", "", "b"}) == "a\n\nb");
  CHECK(split_lines(join_lines({"org:1", "rooms"})) == std::vector<std::string>{"org:1", "rooms"});
}

TEST_CASE("entry codec: an unsigned entry is stored and read as it is") {
  const EntryCodec codec;
  CHECK_FALSE(codec.signs());
  CHECK(codec.seal("ns:rooms:1", kPayload, kFields) == kPayload);
  std::string v = kPayload;
  check_hit(codec.hit("ns:rooms:1", v, kFields));
}

TEST_CASE("entry codec: a hit from a reply's fields, wherever they start") {
  const EntryCodec codec;
  // The read script's hit: {1, v, f, s, d, t, lease, x}.
  std::vector<Reply> e{Reply::integer(1),          Reply::bulk(kPayload),      Reply::bulk(std::string(kFields.f)),
                       Reply::bulk(std::string(kFields.s)), Reply::bulk(std::string(kFields.d)),
                       Reply::bulk(std::string(kFields.t)), Reply::integer(0), Reply::bulk(std::string(kFields.x))};
  check_hit(codec.hit("ns:rooms:1", e, 1, e[7].str()));
  // An HMGET of a hash without tags: t is nil, which reads as no tags.
  std::vector<Reply> plain{Reply::bulk(kPayload), Reply::bulk("1"), Reply::bulk("2"), Reply::bulk("3"), Reply::nil()};
  TierResult r = codec.hit("k", plain, 0, "");
  CHECK(r.status == TierResult::Status::Hit);
  CHECK(r.tags.empty());
  CHECK(r.load_ns == 3 * kNanosPerMs);
}

TEST_CASE("entry codec: a signed entry opens for its key and fields only") {
  const EntryCodec codec(std::string(32, 'k'));
  REQUIRE(codec.signs());
  const std::string v = codec.seal("ns:rooms:1", kPayload, kFields);
  CHECK(v != kPayload);

  std::string stored = v;
  check_hit(codec.hit("ns:rooms:1", stored, kFields));

  StoredFields pushed = kFields;
  pushed.f = "1800000060000";
  for (auto [key, fields] : {std::pair{"ns:rooms:2", kFields}, std::pair{"ns:rooms:1", pushed}}) {
    stored = v;
    TierResult r = codec.hit(key, stored, fields);
    CHECK(r.status == TierResult::Status::Miss);
    CHECK(r.forged);
    CHECK(r.payload.empty());
  }
  stored = kPayload;  // an unsigned entry where entries are signed
  CHECK(codec.hit("ns:rooms:1", stored, kFields).forged);
  stored = v;  // signed by another key
  CHECK(EntryCodec(std::string(32, 'x')).hit("ns:rooms:1", stored, kFields).forged);
}

TEST_CASE("entry codec: a fill notice wakes its key's waiters with the entry, or with Done") {
  const EntryCodec codec;
  auto notice = codec.fill_notice(notice_of(notice_fields("ns:rooms:1", kPayload, kFields)));
  REQUIRE(notice);
  CHECK(notice->key == "ns:rooms:1");
  CHECK_FALSE(notice->forged);
  check_hit(notice->filled);

  notice = codec.fill_notice(notice_of({"ns:rooms:1"}));  // a release: no entry
  REQUIRE(notice);
  CHECK(notice->key == "ns:rooms:1");
  CHECK(notice->filled.status == TierResult::Status::Done);
  CHECK(notice->filled.payload.empty());
  CHECK_FALSE(notice->forged);

  notice = codec.fill_notice(notice_of({std::string("k\0:y", 4)}));
  REQUIRE(notice);
  CHECK(notice->key == std::string("k\0:y", 4));  // binary safe
}

TEST_CASE("entry codec: a signed fill notice opens, a forged one only wakes") {
  const EntryCodec codec(std::string(32, 'k'));
  const std::string v = codec.seal("ns:rooms:1", kPayload, kFields);
  auto notice = codec.fill_notice(notice_of(notice_fields("ns:rooms:1", v, kFields)));
  REQUIRE(notice);
  check_hit(notice->filled);

  auto fields = notice_fields("ns:rooms:1", v, kFields);
  fields[6] = "";  // the dependency record cleared
  notice = codec.fill_notice(notice_of(fields));
  REQUIRE(notice);
  CHECK(notice->forged);
  CHECK(notice->key == "ns:rooms:1");
  CHECK(notice->filled.status == TierResult::Status::Done);  // the waiters read for themselves
  CHECK_FALSE(notice->filled.forged);
  CHECK(notice->filled.payload.empty());
}

TEST_CASE("entry codec: malformed fill notices are refused") {
  const EntryCodec codec;
  for (const std::string& bad : {std::string(), std::string("3:ab"), std::string("x:k"), notice_of({"k", "v"}),
                                 notice_of({"k", "v", "f", "s", "d", "t"}), notice_of({"k", "v", "f", "s", "d", "t", "x", "y"}),
                                 notice_of({"k"}) + "1"}) {
    INFO(bad);
    CHECK_FALSE(codec.fill_notice(bad));
  }
}

// Found by fuzz_entry: a stored f/s/d of more than ~9.2e12 ms overflowed when turned into
// nanoseconds (undefined behaviour; in practice a lifetime in the past or far future).
TEST_CASE("entry codec: millisecond fields past the range of Nanos saturate instead of overflowing") {
  constexpr Nanos kMax = std::numeric_limits<Nanos>::max(), kMin = std::numeric_limits<Nanos>::min();
  CHECK(parse_ms_as_ns("1700000060000") == 1700000060000 * kNanosPerMs);
  CHECK(parse_ms_as_ns("9223372036854") == 9223372036854 * kNanosPerMs);  // the largest that fits
  CHECK(parse_ms_as_ns("9223372036855") == kMax);
  CHECK(parse_ms_as_ns("22222222222222222") == kMax);
  CHECK(parse_ms_as_ns("-22222222222222222") == kMin);
  CHECK(parse_ms_as_ns("x") == 0);

  std::string v = kPayload;
  const TierResult r = EntryCodec().hit("k", v, {"22222222222222222", "-22222222222222222", "99999999999999999", "", ""});
  CHECK(r.fresh_until_wall == kMax);
  CHECK(r.stale_until_wall == kMin);
  CHECK(r.load_ns == kMax);
}

TEST_CASE("entry codec: a compressed entry reads as the codec's plain payload, signed or not") {
  std::string rows = "[";
  for (int i = 0; i < 400; ++i) rows += "{\"room\":\"B" + std::to_string(i % 9) + "\",\"capacity\":30},";
  rows.back() = ']';
  const std::string payload = std::string(kPayloadHeader) + rows;
  const std::string compressed = compress_payload(payload, 0);
  REQUIRE(compressed.starts_with(kCompressedHeader));

  std::string v = compressed;  // unsigned: stored as it is, read back decompressed
  CHECK(EntryCodec().seal("ns:rooms:1", compressed, kFields) == compressed);
  TierResult r = EntryCodec().hit("ns:rooms:1", v, kFields);
  CHECK(r.status == TierResult::Status::Hit);
  CHECK(r.payload == payload);

  const EntryCodec codec(std::string(32, 'k'));
  const std::string sealed = codec.seal("ns:rooms:1", compressed, kFields);
  CHECK(sealed.starts_with(kSignedCompressedHeader));
  CHECK(sealed.substr(kSignedCompressedHeader.size() + EntrySigner::kMacBytes) ==
        compressed.substr(kCompressedHeader.size()));  // the compressed bytes are what is signed
  v = sealed;
  r = codec.hit("ns:rooms:1", v, kFields);
  CHECK(r.status == TierResult::Status::Hit);
  CHECK(r.payload == payload);

  // The flags byte is covered by the MAC: "signed" alone does not open a compressed body.
  v = sealed;
  v[2] = kSignedHeader.back();
  CHECK(codec.hit("ns:rooms:1", v, kFields).forged);

  // A fill notice carries the stored v: its waiters get the plain payload too.
  auto notice = codec.fill_notice(notice_of(notice_fields("ns:rooms:1", sealed, kFields)));
  REQUIRE(notice);
  CHECK(notice->filled.payload == payload);
}

TEST_CASE("entry codec: a compressed payload that does not decompress is handed on as stored") {
  const std::string stored = compress_payload(std::string(kPayloadHeader) + std::string(50000, 'x'), 0);
  REQUIRE(stored.starts_with(kCompressedHeader));
  std::string v = stored;
  TierResult r = EntryCodec({}, 1000).hit("k", v, kFields);  // over this reader's limit
  CHECK(r.status == TierResult::Status::Hit);
  CHECK_FALSE(r.forged);
  CHECK(r.payload == stored);  // no reader decodes it: an unusable payload, counted there
}
