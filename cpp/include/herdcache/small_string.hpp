// Bytes kept inside the object up to N, on the heap beyond.
//
// For what the event loop's thread hands to the Redis I/O thread with every request (the
// encoded command, the key a read may need again). Memory that one thread allocates and
// the other frees makes the two contend for malloc's arena locks; a request's usual bytes
// fit inline and cost no allocation at all. Move-only: a copy is never what is meant.
#pragma once
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace herdcache {

template <std::size_t N>
class SmallString {
 public:
  static constexpr std::size_t kInlineBytes = N;

  SmallString() noexcept = default;
  explicit SmallString(std::string_view bytes) { std::memcpy(allocate(bytes.size()), bytes.data(), bytes.size()); }
  SmallString(SmallString&& other) noexcept { take(other); }
  SmallString& operator=(SmallString&& other) noexcept {
    if (this != &other) take(other);
    return *this;
  }
  SmallString(const SmallString&) = delete;
  SmallString& operator=(const SmallString&) = delete;

  // Makes room for exactly `size` bytes (the old ones are gone) and returns where to write them.
  char* allocate(std::size_t size) {
    heap_.reset();
    size_ = 0;
    if (size > N) heap_ = std::make_unique_for_overwrite<char[]>(size);
    size_ = size;
    return data();
  }

  std::string_view view() const noexcept { return {size_ <= N ? inline_ : heap_.get(), size_}; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  bool is_inline() const noexcept { return size_ <= N; }

 private:
  void take(SmallString& other) noexcept {
    size_ = std::exchange(other.size_, 0);
    heap_ = std::move(other.heap_);
    if (size_ <= N) std::memcpy(inline_, other.inline_, size_);
  }

  char* data() noexcept { return size_ <= N ? inline_ : heap_.get(); }

  std::size_t size_ = 0;
  std::unique_ptr<char[]> heap_;  // the bytes when there are more than N
  char inline_[N];
};

}  // namespace herdcache
