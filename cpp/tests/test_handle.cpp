// Handles: counted by their maker's ops (as the bindings count Python objects), or boxed
// from a shared_ptr; copies, moves and resets keep the count exact.
#include <catch2/catch.hpp>

#include <memory>
#include <utility>
#include <vector>

#include "herdcache/handle.hpp"

using namespace herdcache;

namespace {

// An object counted in place, as a Python object is by its reference count.
struct Counted {
  int refs = 1;
};
void retain(void* p) noexcept { ++static_cast<Counted*>(p)->refs; }
void release(void* p) noexcept { --static_cast<Counted*>(p)->refs; }
constexpr Handle::Ops kCountedOps{retain, release};

}  // namespace

TEST_CASE("handle: copies and destruction go through the maker's ops") {
  Counted object;
  {
    Handle a(&object, &kCountedOps);  // adopts the one reference
    CHECK(a.get() == &object);
    CHECK(a.as<Counted>() == &object);
    Handle b = a;
    CHECK(object.refs == 2);
    Handle c = std::move(b);
    CHECK(object.refs == 2);
    CHECK_FALSE(b);  // NOLINT: a moved-from handle is empty
    CHECK(b.get() == nullptr);
    std::vector<Handle> many(3, c);
    CHECK(object.refs == 5);
    many.clear();
    c.reset();
    CHECK_FALSE(c);
    CHECK(object.refs == 1);
    a = a;  // NOLINT: self-assignment keeps the reference
    CHECK(object.refs == 1);
  }
  CHECK(object.refs == 0);
}

TEST_CASE("handle: a shared_ptr is boxed once and released with its last handle") {
  auto owner = std::make_shared<int>(42);
  std::weak_ptr<int> watch = owner;
  {
    Handle a(std::move(owner));
    CHECK(*a.as<int>() == 42);
    Handle b = a;
    Handle c;
    c = b;
    CHECK(c.get() == a.get());
    CHECK(watch.use_count() == 1);  // one box, counted inside
    a.reset();
    b = Handle();
    CHECK_FALSE(watch.expired());
  }
  CHECK(watch.expired());
  CHECK_FALSE(Handle(std::shared_ptr<int>()));
  CHECK_FALSE(Handle(nullptr));
}
