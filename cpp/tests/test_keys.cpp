// Key encoding: byte-exact expectations for every token, ordering rules, misuse, long keys,
// and the glob / prefix matchers used by invalidation.
#include <catch2/catch.hpp>
#include <xxhash.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "herdcache/errors.hpp"
#include "herdcache/keys.hpp"

using namespace herdcache;

namespace {

// The key "app:r" plus whatever `add` writes.
std::string key_of(const std::function<void(KeyBuilder&)>& add) {
  KeyBuilder builder;
  builder.reset("app", "r");
  add(builder);
  return builder.finish().str;
}

}  // namespace

TEST_CASE("keys: scalar tokens are byte-exact") {
  CHECK(key_of([](KeyBuilder&) {}) == "app:r");
  CHECK(key_of([](KeyBuilder& b) { b.add_none(); }) == "app:r:~");
  CHECK(key_of([](KeyBuilder& b) { b.add_bool(true); }) == "app:r:!t");
  CHECK(key_of([](KeyBuilder& b) { b.add_bool(false); }) == "app:r:!f");
  CHECK(key_of([](KeyBuilder& b) { b.add_int(42); }) == "app:r:42");
  CHECK(key_of([](KeyBuilder& b) { b.add_int(-7); }) == "app:r:-7");
  CHECK(key_of([](KeyBuilder& b) { b.add_int(std::numeric_limits<std::int64_t>::min()); }) ==
        "app:r:-9223372036854775808");
  CHECK(key_of([](KeyBuilder& b) { b.add_int_decimal("-123456789012345678901234567890"); }) ==
        "app:r:-123456789012345678901234567890");
  CHECK(key_of([](KeyBuilder& b) { b.add_bytes(std::string_view("\x00\xff" "A", 3)); }) ==
        "app:r:!x00ff41");
  CHECK(key_of([](KeyBuilder& b) { b.add_bytes(""); }) == "app:r:!x");
  CHECK(key_of([](KeyBuilder& b) {
          b.add_int(1);
          b.add_str("a");
          b.add_none();
        }) == "app:r:1:a:~");
}

TEST_CASE("keys: floats use the shortest round-trip form") {
  auto f = [](double v) { return key_of([v](KeyBuilder& b) { b.add_float(v); }); };
  CHECK(f(1.5) == "app:r:^1.5");
  CHECK(f(1.0) == "app:r:^1");
  CHECK(f(0.1) == "app:r:^0.1");
  CHECK(f(1e20) == "app:r:^1e+20");
  CHECK(f(0.0) == "app:r:^0");
  CHECK(f(-0.0) == "app:r:^-0");
  CHECK(f(std::nan("")) == "app:r:^nan");
  CHECK(f(-std::nan("")) == "app:r:^nan");
  CHECK(f(std::numeric_limits<double>::infinity()) == "app:r:^inf");
  CHECK(f(-std::numeric_limits<double>::infinity()) == "app:r:^-inf");
}

TEST_CASE("keys: strings escape the key and glob syntax") {
  auto s = [](std::string_view v) { return key_of([v](KeyBuilder& b) { b.add_str(v); }); };
  CHECK(s("hello") == "app:r:hello");
  CHECK(s("%:,=[]{}*?#\\'") == "app:r:%25%3A%2C%3D%5B%5D%7B%7D%2A%3F%23%5C%27");
  CHECK(s(std::string_view(" \t\x7f\x00", 4)) == "app:r:%20%09%7F%00");
  CHECK(s("caf\xc3\xa9") == "app:r:caf\xc3\xa9");  // UTF-8 passes through
  CHECK(s("a-b.c_d/e~f!") == "app:r:a-b.c_d/e~f!");
}

TEST_CASE("keys: strings that look like other tokens get a leading quote") {
  auto s = [](std::string_view v) { return key_of([v](KeyBuilder& b) { b.add_str(v); }); };
  CHECK(s("") == "app:r:'");
  CHECK(s("42") == "app:r:'42");
  CHECK(s("-7") == "app:r:'-7");
  CHECK(s("~") == "app:r:'~");
  CHECK(s("!t") == "app:r:'!t");
  CHECK(s("^1.5") == "app:r:'^1.5");
  CHECK(s("-") == "app:r:-");
  CHECK(s("4a") == "app:r:4a");
  CHECK(s("'x") == "app:r:%27x");  // a quote in the text is escaped, never a prefix
}

TEST_CASE("keys: \"42\" and 42 differ, True and 1 differ, None and \"~\" differ") {
  CHECK(key_of([](KeyBuilder& b) { b.add_str("42"); }) !=
        key_of([](KeyBuilder& b) { b.add_int(42); }));
  CHECK(key_of([](KeyBuilder& b) { b.add_bool(true); }) !=
        key_of([](KeyBuilder& b) { b.add_int(1); }));
  CHECK(key_of([](KeyBuilder& b) { b.add_float(1.0); }) !=
        key_of([](KeyBuilder& b) { b.add_int(1); }));
  CHECK(key_of([](KeyBuilder& b) { b.add_none(); }) !=
        key_of([](KeyBuilder& b) { b.add_str("~"); }));
  CHECK(key_of([](KeyBuilder& b) { b.add_bytes("ab"); }) !=
        key_of([](KeyBuilder& b) { b.add_str("ab"); }));
  // One argument containing ':' vs two arguments.
  CHECK(key_of([](KeyBuilder& b) { b.add_str("a:b"); }) !=
        key_of([](KeyBuilder& b) {
          b.add_str("a");
          b.add_str("b");
        }));
}

TEST_CASE("keys: lists nest") {
  CHECK(key_of([](KeyBuilder& b) {
          b.begin_list();
          b.add_int(1);
          b.add_str("a");
          b.begin_list();
          b.end_list();
          b.begin_list();
          b.add_none();
          b.end_list();
          b.end_list();
          b.add_int(2);
        }) == "app:r:[1,a,[],[~]]:2");
  // A list holding "a,b" is not a list holding "a" and "b".
  CHECK(key_of([](KeyBuilder& b) {
          b.begin_list();
          b.add_str("a,b");
          b.end_list();
        }) == "app:r:[a%2Cb]");
}

TEST_CASE("keys: dict items are sorted whatever the insertion order") {
  auto item = [](KeyBuilder& b, std::string_view k, auto&& value) {
    b.add_str(k);
    b.dict_value();
    value(b);
  };
  std::string forward = key_of([&](KeyBuilder& b) {
    b.begin_dict();
    item(b, "b", [](KeyBuilder& v) { v.add_int(1); });
    item(b, "a", [&](KeyBuilder& v) {
      v.begin_dict();
      item(v, "y", [](KeyBuilder& w) { w.add_int(2); });
      item(v, "x", [](KeyBuilder& w) { w.add_int(1); });
      v.end_dict();
    });
    b.end_dict();
  });
  std::string backward = key_of([&](KeyBuilder& b) {
    b.begin_dict();
    item(b, "a", [&](KeyBuilder& v) {
      v.begin_dict();
      item(v, "x", [](KeyBuilder& w) { w.add_int(1); });
      item(v, "y", [](KeyBuilder& w) { w.add_int(2); });
      v.end_dict();
    });
    item(b, "b", [](KeyBuilder& v) { v.add_int(1); });
    b.end_dict();
  });
  CHECK(forward == "app:r:{a={x=1,y=2},b=1}");
  CHECK(backward == forward);
  CHECK(key_of([](KeyBuilder& b) {
          b.begin_dict();
          b.end_dict();
        }) == "app:r:{}");
  // Lists as values, a dict inside a list, and non-string keys.
  CHECK(key_of([](KeyBuilder& b) {
          b.begin_list();
          b.begin_dict();
          b.add_int(2);
          b.dict_value();
          b.begin_list();
          b.add_none();
          b.end_list();
          b.add_int(1);
          b.dict_value();
          b.add_bool(false);
          b.end_dict();
          b.end_list();
        }) == "app:r:[{1=!f,2=[~]}]");
}

TEST_CASE("keys: keyword parameters are sorted by name") {
  std::string key = key_of([](KeyBuilder& b) {
    b.add_int(1);
    b.begin_param("zeta");
    b.add_int(1);
    b.begin_param("alpha");
    b.add_str("x");
    b.begin_param("mid");
    b.begin_list();
    b.add_int(1);
    b.add_int(2);
    b.end_list();
  });
  CHECK(key == "app:r:1:alpha=x:mid=[1,2]:zeta=1");
  CHECK(key_of([](KeyBuilder& b) {
          b.begin_param("a b");
          b.add_str("");
        }) == "app:r:a%20b='");
}

TEST_CASE("keys: misuse throws InvalidArgument") {
  KeyBuilder b;
  CHECK_THROWS_AS(b.add_int(1), InvalidArgument);  // before reset()
  CHECK_THROWS_AS(b.finish(), InvalidArgument);
  CHECK_THROWS_WITH(b.reset("", "r"), Catch::Contains("namespace"));
  CHECK_THROWS_WITH(b.reset("app", ""), Catch::Contains("resource"));
  CHECK_THROWS_WITH(b.reset("a:b", "r"), Catch::Contains("namespace"));
  CHECK_THROWS_WITH(b.reset("app", "r:x"), Catch::Contains("resource"));
  CHECK_THROWS_AS(b.reset("app", ""), InvalidArgument);

  auto throws = [](const std::function<void(KeyBuilder&)>& steps) {
    KeyBuilder builder;
    builder.reset("app", "r");
    CHECK_THROWS_AS((steps(builder), builder.finish()), InvalidArgument);
  };
  throws([](KeyBuilder& k) { k.begin_list(); });                       // unclosed list
  throws([](KeyBuilder& k) { k.begin_dict(); });                       // unclosed dict
  throws([](KeyBuilder& k) { k.end_list(); });                         // nothing open
  throws([](KeyBuilder& k) { k.begin_list(); k.end_dict(); });         // wrong closer
  throws([](KeyBuilder& k) { k.begin_dict(); k.add_int(1); k.end_dict(); });  // no value
  throws([](KeyBuilder& k) { k.begin_dict(); k.add_int(1); k.add_int(2); });  // no dict_value
  throws([](KeyBuilder& k) { k.begin_dict(); k.dict_value(); });       // value without key
  throws([](KeyBuilder& k) { k.begin_dict(); k.add_int(1); k.dict_value(); k.end_dict(); });
  throws([](KeyBuilder& k) { k.dict_value(); });                       // not in a dict
  throws([](KeyBuilder& k) { k.begin_param("a"); });                   // no value
  throws([](KeyBuilder& k) { k.begin_param(""); });
  throws([](KeyBuilder& k) { k.begin_param("a"); k.begin_param("b"); });
  throws([](KeyBuilder& k) { k.begin_list(); k.begin_param("a"); });
  throws([](KeyBuilder& k) { k.begin_param("a"); k.add_int(1); k.add_int(2); });  // positional
  throws([](KeyBuilder& k) { k.begin_param("a"); k.add_int(1); k.begin_param("a"); k.add_int(2); });
  for (std::string_view bad : {"", "-", "+5", "007", "-0", "1.5", "12a"}) {
    INFO(bad);
    throws([bad](KeyBuilder& k) { k.add_int_decimal(bad); });
  }

  KeyBuilder done;
  done.reset("app", "r");
  done.finish();
  CHECK_THROWS_AS(done.add_int(1), InvalidArgument);  // finished until reset()
}

TEST_CASE("keys: Key carries the resource, the args offset and the hash") {
  KeyBuilder b;
  b.reset("app", "users");
  b.add_int(42);
  Key key = b.finish();
  CHECK(key.str == "app:users:42");
  CHECK(key.full.empty());
  CHECK(key.canonical() == "app:users:42");
  CHECK(key.resource == "users");
  CHECK(key.args_begin == 9);
  CHECK(key.canonical().substr(key.args_begin) == ":42");
  // xxh3-64 of "app:users:42", computed independently with Python's xxhash 3.
  CHECK(key.hash == 0xad3e34d7cb74eeedULL);
  CHECK(hash_bytes("app:users:42") == 0xad3e34d7cb74eeedULL);
}

TEST_CASE("keys: long keys keep a readable prefix and end in the xxh3-128 of the whole") {
  KeyBuilder b;
  b.reset("app", "docs");
  b.add_str(std::string(300, 'x'));
  std::string canonical = "app:docs:" + std::string(300, 'x');
  Key key = b.finish();
  REQUIRE(key.str.size() <= kMaxKeyBytes);
  CHECK(key.str.size() == kMaxKeyBytes);
  CHECK(key.full == canonical);
  CHECK(key.canonical() == canonical);
  // Computed independently with Python: xxhash.xxh3_128_hexdigest(canonical).
  CHECK(key.str == canonical.substr(0, 217) + "#aee8d27463ad21216b2d1c86abcf5810");
  XXH128_hash_t digest = XXH3_128bits(canonical.data(), canonical.size());
  CHECK(key.str.substr(218) == fmt::format("{:016x}{:016x}", digest.high64, digest.low64));
  CHECK(key.hash == hash_bytes(key.str));
  CHECK(key.hash == 0x9251c6e4988d9a2aULL);
  CHECK(key.args_begin == 8);

  // Exactly kMaxKeyBytes is not shortened; one more byte is.
  KeyBuilder edge;
  edge.reset("app", "docs");
  edge.add_str(std::string(kMaxKeyBytes - 9, 'y'));
  CHECK(edge.finish().full.empty());
  edge.reset("app", "docs");
  edge.add_str(std::string(kMaxKeyBytes - 8, 'y'));
  CHECK(edge.finish().full.size() == kMaxKeyBytes + 1);
}

TEST_CASE("keys: shortening never splits a UTF-8 character") {
  std::string text;
  for (int i = 0; i < 150; ++i) text += "\xc3\xa9";  // é
  KeyBuilder b;
  b.reset("app", "doc");
  b.add_str(text);
  Key key = b.finish();
  // "app:doc:" is 8 bytes, so byte 217 is the second half of an é: the cut moves to 216.
  CHECK(key.str.size() == 216 + 33);
  CHECK(key.str.substr(0, 216) == key.full.substr(0, 216));
  CHECK(key.str.substr(216) == "#d9fce0a3aa47e66527c184b2f3be2088");
}

TEST_CASE("keys: a reused builder gives identical results") {
  auto build = [](KeyBuilder& b, int salt) {
    b.reset("app", "r");
    b.add_int(salt);
    b.begin_dict();
    b.add_str("k");
    b.dict_value();
    b.add_float(2.5);
    b.end_dict();
    b.begin_param("p");
    b.add_bool(true);
    return b.finish();
  };
  KeyBuilder fresh1, fresh2, reused;
  Key first = build(fresh1, 1);
  build(reused, 7);
  CHECK(build(reused, 1).str == first.str);
  CHECK(build(reused, 2).str == build(fresh2, 2).str);

  // Long then short: the shortened form from the first key does not leak into the second.
  reused.reset("app", "r");
  reused.add_str(std::string(400, 'z'));
  CHECK(reused.finish().full.size() > kMaxKeyBytes);
  reused.reset("app", "r");
  reused.add_int(3);
  Key short_key = reused.finish();
  CHECK(short_key.str == "app:r:3");
  CHECK(short_key.full.empty());

  // finish_view is repeatable and points into the builder's own buffer (no copy).
  reused.reset("app", "r");
  reused.add_int(3);
  KeyBuilder::View view = reused.finish_view();
  CHECK(view.str == "app:r:3");
  CHECK(view.str.data() == reused.canonical().data());
  CHECK(view.hash == short_key.hash);
  CHECK(reused.finish_view().str == view.str);
  CHECK(reused.finish().str == "app:r:3");
}

TEST_CASE("keys: glob_match follows Redis MATCH") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "anything"));
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "a"));
  CHECK(glob_match("courses:*", "courses:1:2"));
  CHECK_FALSE(glob_match("courses:*", "rooms:1"));
  CHECK(glob_match("h?llo", "hello"));
  CHECK_FALSE(glob_match("h?llo", "hllo"));
  CHECK(glob_match("h[a-c]llo", "hbllo"));
  CHECK_FALSE(glob_match("h[a-c]llo", "hdllo"));
  CHECK(glob_match("h[c-a]llo", "hbllo"));  // reversed range, as Redis
  CHECK(glob_match("h[ae]llo", "hello"));
  CHECK_FALSE(glob_match("h[!a]llo", "hallo"));
  CHECK(glob_match("h[!a]llo", "hbllo"));
  CHECK_FALSE(glob_match("h[^e]llo", "hello"));
  CHECK(glob_match("h\\*llo", "h*llo"));
  CHECK_FALSE(glob_match("h\\*llo", "hello"));
  CHECK(glob_match("a[\\]]b", "a]b"));
  CHECK(glob_match("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_match("a*b*c", "aXXbYY"));
  CHECK(glob_match("a**c", "abc"));
  CHECK_FALSE(glob_match("abc", "ab"));
  CHECK_FALSE(glob_match("ab", "abc"));
  CHECK(glob_match("[abc", "b"));  // unterminated class runs to the end, as Redis
  CHECK(glob_match("trailing\\", "trailing\\"));
  CHECK(glob_match("*%3A*", "app:c:a%3Ab"));  // escaped bytes are matched literally
  // Pathological backtracking stays fast (iterative, O(pattern * text)).
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST_CASE("keys: key_has_prefix stops at token boundaries") {
  CHECK(key_has_prefix("app:c:o1:1", "app:c:o1"));
  CHECK(key_has_prefix("app:c:o1", "app:c:o1"));
  CHECK_FALSE(key_has_prefix("app:c:o10", "app:c:o1"));
  CHECK_FALSE(key_has_prefix("app:c", "app:c:o1"));
  CHECK(key_has_prefix("app:c:o1:1", "app:c"));
}

TEST_CASE("keys: restart from a reset's prefix builds the same key as reset") {
  KeyBuilder fresh;
  fresh.reset("app", "courses");
  std::string prefix(fresh.canonical());
  fresh.add_str("o1");
  fresh.begin_param("semester");
  fresh.add_int(2);
  Key expected = fresh.finish();

  KeyBuilder reused;
  reused.reset("other", "thing");
  reused.add_int(99);
  reused.finish();
  reused.restart(prefix);
  reused.add_str("o1");
  reused.begin_param("semester");
  reused.add_int(2);
  Key got = reused.finish();
  CHECK(got.str == expected.str);
  CHECK(got.resource == "courses");
  CHECK(got.hash == expected.hash);
}

TEST_CASE("keys: namespaces and resources cannot spell internal keys", "[keys]") {
  KeyBuilder b;
  // "a#t" would write namespace "a"'s tag version keys ("a#t:<tag>").
  CHECK_THROWS_WITH(b.reset("a#t", "rooms"), Catch::Contains("key namespace must not contain '#'"));
  CHECK_THROWS_WITH(b.reset("a", "r#l"), Catch::Contains("key resource must not contain '#'"));
  for (const char* bad : {"a:b", "a{b}", "a*", "a?", "a[b]", "a%b", "a,b", "a=b", "a\\b"}) {
    CHECK_THROWS_WITH(b.reset(bad, "rooms"), Catch::Contains("reserved by the key format"));
    CHECK_THROWS_WITH(b.reset("ns", bad), Catch::Contains("reserved by the key format"));
  }
  CHECK_THROWS_WITH(b.reset("a b", "rooms"), Catch::Contains("spaces or control characters"));
  CHECK_THROWS_WITH(b.reset("ns", std::string("r\0x", 3)), Catch::Contains("spaces or control characters"));
  b.reset("my-app.v2", "time_slots");  // what names usually look like
  b.add_str("x");
  CHECK(b.finish().str == "my-app.v2:time_slots:x");
}
