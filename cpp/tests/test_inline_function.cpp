#include <catch2/catch.hpp>

#include <array>
#include <memory>
#include <string>

#include "herdcache/inline_function.hpp"
#include "herdcache/small_string.hpp"

using herdcache::InlineFunction;
using herdcache::SmallString;

namespace {
// Counts live copies of itself, to check that every stored callable is destroyed once.
struct Tracked {
  static inline int live = 0;
  std::array<char, 8> pad{};
  Tracked() { ++live; }
  Tracked(const Tracked&) { ++live; }
  Tracked(Tracked&&) noexcept { ++live; }
  ~Tracked() { --live; }
};
}  // namespace

TEST_CASE("inline function: small callables live inside, large ones on the heap", "[inline_function]") {
  using Fn = InlineFunction<int(int), 32>;
  int base = 10;
  Fn small = [base](int x) { return base + x; };
  CHECK(small.is_inline());
  CHECK(small(5) == 15);

  std::array<char, 64> big{};
  big[0] = 7;
  Fn large = [big](int x) { return big[0] + x; };
  CHECK_FALSE(large.is_inline());
  CHECK(large(1) == 8);

  Fn empty;
  CHECK_FALSE(empty);
  CHECK_FALSE(Fn(nullptr));
}

TEST_CASE("inline function: holds move-only captures and mutates its state", "[inline_function]") {
  InlineFunction<int(), 32> counter = [n = std::make_unique<int>(0)]() mutable { return ++*n; };
  CHECK(counter() == 1);
  CHECK(counter() == 2);
  auto moved = std::move(counter);
  CHECK_FALSE(counter);  // NOLINT(bugprone-use-after-move): what a move leaves is the point
  CHECK(moved() == 3);   // the state moved with it
}

TEST_CASE("inline function: every callable is destroyed exactly once", "[inline_function]") {
  Tracked::live = 0;
  {
    InlineFunction<void(), 32> a = [t = Tracked()] { (void)t; };
    InlineFunction<void(), 32> b = [t = Tracked(), pad = std::array<char, 64>{}] { (void)t, (void)pad; };
    CHECK(a.is_inline());
    CHECK_FALSE(b.is_inline());
    CHECK(Tracked::live == 2);
    auto a2 = std::move(a);
    auto b2 = std::move(b);
    CHECK(Tracked::live == 2);
    a2 = nullptr;
    CHECK(Tracked::live == 1);
    b2 = std::move(a2);  // an empty one replaces a full one
    CHECK(Tracked::live == 0);
    CHECK_FALSE(b2);
  }
  CHECK(Tracked::live == 0);
}

TEST_CASE("inline function: passes arguments through, by value and by reference", "[inline_function]") {
  InlineFunction<void(std::string, int&), 16> append = [](std::string s, int& n) { n += static_cast<int>(s.size()); };
  int total = 0;
  append(std::string(100, 'x'), total);
  append("abc", total);
  CHECK(total == 103);
}

TEST_CASE("small string: inline up to N bytes, on the heap beyond; moves keep the bytes", "[inline_function]") {
  SmallString<8> inline_one("12345678");
  CHECK(inline_one.is_inline());
  CHECK(inline_one.view() == "12345678");
  SmallString<8> heap_one("123456789");
  CHECK_FALSE(heap_one.is_inline());
  CHECK(heap_one.view() == "123456789");

  SmallString<8> a(std::move(inline_one));
  SmallString<8> b(std::move(heap_one));
  CHECK(a.view() == "12345678");
  CHECK(b.view() == "123456789");
  CHECK(inline_one.empty());  // NOLINT(bugprone-use-after-move)
  CHECK(heap_one.empty());    // NOLINT(bugprone-use-after-move)
  a = std::move(b);
  CHECK(a.view() == "123456789");
  CHECK(SmallString<8>().view().empty());
}
