// An open-addressing index of objects that carry their own key (the memory tier's
// entries): 9 bytes a slot, no node per object.
//
// Two arrays of one power-of-two capacity: a control byte per slot (0 = empty, else 0x80 |
// the hash's top 7 bits) and the object pointer. Linear probing from the hash's low bits;
// a probe reads control bytes and compares an object's key only when its 7 bits match, so
// a lookup normally touches one object, the one it finds. The table doubles before it is
// 7/8 full and never shrinks, except on clear(). erase() shifts the following run back
// (no tombstones), so heavy insert/erase never degrades probe lengths.
//
// T provides `std::string_view key() const` and `std::uint64_t hash() const`, the hash
// lookups for that key are made with (objects need not store it: the memory tier's
// entries recompute it, which only erase and growth ask for). The index does not own its
// objects. Not thread-safe: the owner locks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace herdcache {

template <class T>
class HashIndex {
 public:
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return ctrl_ ? mask_ + 1 : 0; }

  T* find(std::string_view key, std::uint64_t hash) const noexcept {
    if (!ctrl_) return nullptr;
    const std::uint8_t tag = tag_of(hash);
    for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const std::uint8_t c = ctrl_[i];
      if (c == kEmpty) return nullptr;
      if (c == tag && slots_[i]->key() == key) return slots_[i];
    }
  }

  // Makes room for one more object; the only call that allocates (and may throw).
  void reserve_one() {
    if (!ctrl_) {
      rebuild(kMinCapacity);
    } else if ((size_ + 1) * 8 > (mask_ + 1) * 7) {
      rebuild((mask_ + 1) * 2);
    }
  }

  // Precondition: reserve_one() since the last insert, and no object under the same key.
  void insert(T* object) noexcept {
    place(object);
    ++size_;
  }

  // Precondition: `object` is in the index.
  void erase(const T* object) noexcept {
    std::size_t hole = object->hash() & mask_;
    while (slots_[hole] != object) hole = (hole + 1) & mask_;
    // Backward shift: each later member of the run moves into the hole when the hole lies
    // on its probe path (between its home slot and where it is).
    for (std::size_t j = (hole + 1) & mask_; ctrl_[j] != kEmpty; j = (j + 1) & mask_) {
      const std::size_t home = slots_[j]->hash() & mask_;
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        ctrl_[hole] = ctrl_[j];
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    ctrl_[hole] = kEmpty;
    slots_[hole] = nullptr;
    --size_;
  }

  // Forgets every object and frees the table.
  void clear() noexcept {
    ctrl_.reset();
    slots_.reset();
    mask_ = 0;
    size_ = 0;
  }

  // Longest distance of an object from its home slot (for tests).
  std::size_t max_displacement() const noexcept {
    std::size_t longest = 0;
    for (std::size_t i = 0; ctrl_ && i <= mask_; ++i) {
      if (ctrl_[i] == kEmpty) continue;
      const std::size_t d = (i - (slots_[i]->hash() & mask_)) & mask_;
      if (d > longest) longest = d;
    }
    return longest;
  }

 private:
  static constexpr std::uint8_t kEmpty = 0;
  static constexpr std::size_t kMinCapacity = 16;

  static std::uint8_t tag_of(std::uint64_t hash) noexcept {
    return static_cast<std::uint8_t>(0x80 | (hash >> 57));
  }

  void place(T* object) noexcept {
    const std::uint64_t hash = object->hash();
    std::size_t i = hash & mask_;
    while (ctrl_[i] != kEmpty) i = (i + 1) & mask_;
    ctrl_[i] = tag_of(hash);
    slots_[i] = object;
  }

  void rebuild(std::size_t capacity) {
    auto ctrl = std::make_unique<std::uint8_t[]>(capacity);  // zeroed: all empty
    auto slots = std::make_unique<T*[]>(capacity);
    std::unique_ptr<std::uint8_t[]> old_ctrl = std::move(ctrl_);
    std::unique_ptr<T*[]> old_slots = std::move(slots_);
    const std::size_t old_capacity = old_ctrl ? mask_ + 1 : 0;
    ctrl_ = std::move(ctrl);
    slots_ = std::move(slots);
    mask_ = capacity - 1;
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (old_ctrl[i] != kEmpty) place(old_slots[i]);
    }
  }

  std::unique_ptr<std::uint8_t[]> ctrl_;
  std::unique_ptr<T*[]> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace herdcache
