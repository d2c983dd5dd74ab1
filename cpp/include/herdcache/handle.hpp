// A counted reference to a value the engine holds but never looks inside (a Python object
// in production, anything in tests): two words, and no allocation of its own. Whoever
// makes a handle says how its object is counted (`Ops`, in static storage), so a Python
// object is counted by its own reference count rather than by a shared_ptr control block
// allocated beside it (32 bytes a memory-tier entry).
//
// Copying calls `retain`, destruction `release`, on whatever thread does it: the maker's
// ops decide what is safe where (the bindings' handles are copied only with the GIL held
// and park releases made without it, see register_keys.cpp). A value owned by a shared_ptr
// (C++ callers, tests) is boxed once and counted atomically in the box.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <utility>

namespace herdcache {

class Handle {
 public:
  struct Ops {
    void (*retain)(void* object) noexcept;
    void (*release)(void* object) noexcept;
  };

  Handle() noexcept = default;
  Handle(std::nullptr_t) noexcept {}  // NOLINT: converts like a null pointer
  // Adopts one reference to `object` (not null), counted by `ops`, which outlive every handle.
  Handle(void* object, const Ops* ops) noexcept : object_(object), ops_(ops) {}
  // Shares what `owner` owns; an empty shared_ptr makes an empty handle.
  template <class T>
  Handle(std::shared_ptr<T> owner)  // NOLINT: converts like a shared_ptr
      : object_(owner ? new Box{{1}, std::move(owner)} : nullptr), ops_(object_ ? &kBoxOps : nullptr) {}

  Handle(const Handle& other) noexcept : object_(other.object_), ops_(other.ops_) {
    if (ops_) ops_->retain(object_);
  }
  Handle(Handle&& other) noexcept
      : object_(std::exchange(other.object_, nullptr)), ops_(std::exchange(other.ops_, nullptr)) {}
  Handle& operator=(Handle other) noexcept {
    std::swap(object_, other.object_);
    std::swap(ops_, other.ops_);
    return *this;
  }
  ~Handle() {
    if (ops_) ops_->release(object_);
  }

  void reset() noexcept { Handle().swap_with(*this); }
  // The object (for a boxed shared_ptr, the pointer it owns).
  void* get() const noexcept { return ops_ == &kBoxOps ? static_cast<Box*>(object_)->owner.get() : object_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(get());
  }
  explicit operator bool() const noexcept { return ops_ != nullptr; }

 private:
  struct Box {
    std::atomic<std::size_t> refs;
    std::shared_ptr<void> owner;
  };
  static void box_retain(void* box) noexcept {
    static_cast<Box*>(box)->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void box_release(void* box) noexcept {
    auto* b = static_cast<Box*>(box);
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete b;
  }
  static constexpr Ops kBoxOps{box_retain, box_release};

  void swap_with(Handle& other) noexcept {
    std::swap(object_, other.object_);
    std::swap(ops_, other.ops_);
  }

  void* object_ = nullptr;
  const Ops* ops_ = nullptr;
};

}  // namespace herdcache
