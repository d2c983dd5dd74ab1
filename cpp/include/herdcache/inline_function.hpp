// A move-only callable that keeps small callables inside itself.
//
// The Redis request path hands a callback from the thread that submits (the event loop)
// to the I/O thread, which calls it and destroys it. std::function keeps anything larger
// than two pointers on the heap, so every request cost an allocation on one thread and a
// free on the other, and the two threads then fought over malloc's arena locks.
// InlineFunction<Sig, Capacity> stores any callable of up to Capacity bytes in place
// (the request path's callbacks all fit) and only larger ones on the heap. Unlike
// std::function it is move-only, so it can hold move-only captures, and an empty one
// must not be called.
#pragma once
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace herdcache {

template <class Sig, std::size_t Capacity>
class InlineFunction;

template <class R, class... Args, std::size_t Capacity>
class InlineFunction<R(Args...), Capacity> {
 public:
  static constexpr std::size_t kCapacity = Capacity;

  InlineFunction() noexcept = default;
  InlineFunction(std::nullptr_t) noexcept {}  // NOLINT: as std::function

  template <class F, class Fn = std::decay_t<F>,
            class = std::enable_if_t<!std::is_same_v<Fn, InlineFunction> && std::is_invocable_r_v<R, Fn&, Args...>>>
  InlineFunction(F&& f) {  // NOLINT: implicit, as std::function
    if constexpr (fits_inline<Fn>()) {
      ::new (static_cast<void*>(storage_)) Fn(std::forward<F>(f));
      ops_ = &kInlineOps<Fn>;
    } else {
      ::new (static_cast<void*>(storage_)) Fn*(new Fn(std::forward<F>(f)));
      ops_ = &kHeapOps<Fn>;
    }
  }

  InlineFunction(InlineFunction&& other) noexcept { take(other); }
  InlineFunction& operator=(InlineFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  InlineFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  InlineFunction(const InlineFunction&) = delete;
  InlineFunction& operator=(const InlineFunction&) = delete;
  ~InlineFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  // Whether the callable lives in the object (true) or on the heap; for tests.
  bool is_inline() const noexcept { return ops_ != nullptr && ops_->inline_; }

  // Precondition: not empty. Const like std::function's: the callable itself may mutate.
  R operator()(Args... args) const { return ops_->call(storage_, std::forward<Args>(args)...); }

 private:
  struct Ops {
    R (*call)(void* storage, Args&&... args);
    void (*move)(void* from, void* to) noexcept;  // move-constructs at `to`, destroys `from`
    void (*destroy)(void* storage) noexcept;
    bool inline_;
  };

  template <class Fn>
  static constexpr bool fits_inline() {
    return sizeof(Fn) <= Capacity && alignof(Fn) <= alignof(std::max_align_t) &&
           std::is_nothrow_move_constructible_v<Fn>;
  }

  template <class Fn>
  static constexpr Ops kInlineOps{
      [](void* s, Args&&... args) -> R { return (*static_cast<Fn*>(s))(std::forward<Args>(args)...); },
      [](void* from, void* to) noexcept {
        ::new (to) Fn(std::move(*static_cast<Fn*>(from)));
        static_cast<Fn*>(from)->~Fn();
      },
      [](void* s) noexcept { static_cast<Fn*>(s)->~Fn(); },
      true};

  template <class Fn>
  static constexpr Ops kHeapOps{
      [](void* s, Args&&... args) -> R { return (**static_cast<Fn**>(s))(std::forward<Args>(args)...); },
      [](void* from, void* to) noexcept { ::new (to) Fn*(*static_cast<Fn**>(from)); },
      [](void* s) noexcept { delete *static_cast<Fn**>(s); },
      false};

  void take(InlineFunction& other) noexcept {
    if (other.ops_ == nullptr) return;
    other.ops_->move(other.storage_, storage_);
    ops_ = std::exchange(other.ops_, nullptr);
  }
  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  alignas(std::max_align_t) mutable unsigned char storage_[Capacity < sizeof(void*) ? sizeof(void*) : Capacity];
  const Ops* ops_ = nullptr;
};

}  // namespace herdcache
