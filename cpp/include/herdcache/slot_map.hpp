// Values kept under 64-bit ids, for a table that hands ids to another thread and takes
// the values back when they come home (the asyncio bridge's futures, by request id).
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace herdcache {

// An id is never reused (a slot's generation changes each time it is freed; it would take
// 2^32 reuses of one slot to repeat one), so a late or repeated take cannot reach a newer
// value. Slots are reused: no allocation per value once the table has grown to the number
// outstanding. Not thread-safe: one owner.
template <class T>
class SlotMap {
 public:
  std::uint64_t add(T value) {
    std::uint32_t index;
    if (free_.empty()) {
      index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Slot& slot = slots_[index];
    slot.value.emplace(std::move(value));
    ++size_;
    return (std::uint64_t{slot.generation} << 32) | index;
  }

  // The value under `id`, removed; nullopt when it was taken already (or never added).
  std::optional<T> take(std::uint64_t id) {
    const auto index = static_cast<std::uint32_t>(id);
    if (index >= slots_.size()) return std::nullopt;
    Slot& slot = slots_[index];
    if (!slot.value || slot.generation != static_cast<std::uint32_t>(id >> 32)) return std::nullopt;
    std::optional<T> out = std::move(slot.value);
    slot.value.reset();
    ++slot.generation;
    free_.push_back(index);
    --size_;
    return out;
  }

  std::size_t size() const noexcept { return size_; }

 private:
  struct Slot {
    std::optional<T> value;
    std::uint32_t generation = 0;
  };
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;
  std::size_t size_ = 0;
};

}  // namespace herdcache
