// Where a memory-tier entry's bytes go, without Python: heap bytes and live allocations
// per entry for ENTRIES entries shaped as bench_memory.py --bytes makes them (key
// "bench:items:<i>", resource "items", one tag, a handle that allocates nothing, as the
// bindings' make_handle), then the CPU time of a hit (random keys, then one key over and
// over) with a visitor that reads the handle as the bindings' pin_entry does.
//
//   g++ -O2 -std=c++20 -Icpp/include benchmarks/entry_layout.cpp \
//       build/dev/cp311-cp311-linux_x86_64/libherdcache_core.a -lfmt -lxxhash -lpthread \
//       -o build/entry_layout && build/entry_layout [ENTRIES]
//
// (the library of a Release build; scripts/setup.sh makes that one). Heap bytes are
// mallinfo2's in-use bytes plus its mmapped ones (the index's tables are mmapped).
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/memory.hpp"

using namespace herdcache;

namespace {
long live_allocations = 0;

void noop(void*) noexcept {}
constexpr Handle::Ops kOps{noop, noop};

double cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

std::size_t heap_bytes() {
  const auto info = mallinfo2();
  return info.uordblks + info.hblkhd;
}
}  // namespace

void* operator new(std::size_t n) {
  ++live_allocations;
  if (void* p = std::malloc(n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  if (p) --live_allocations;
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  static int object;
  MemoryTier tier({std::size_t{1} << 40, 8}, std::make_shared<ManualClock>());
  std::vector<Key> keys(n);
  double key_bytes = 0;
  for (int i = 0; i < n; ++i) {
    keys[i].str = "bench:items:" + std::to_string(i);
    keys[i].resource = "items";
    keys[i].hash = hash_bytes(keys[i].str);
    key_bytes += keys[i].str.size();
  }
  malloc_trim(0);
  const std::size_t heap_before = heap_bytes();
  const long allocations_before = live_allocations;
  for (int i = 0; i < n; ++i) {
    tier.put(keys[i], EntryData{Handle(&object, &kOps), 32, Lifetime{Nanos{1} << 60, Nanos{1} << 61}, 1000, {"items"}});
  }
  const double per_entry = double(heap_bytes() - heap_before) / n;
  std::printf("entries %d, key %.1f B: heap %.1f B/entry, %.1f B beyond the key; %.2f live allocations/entry\n", n,
              key_bytes / n, per_entry, per_entry - key_bytes / n, double(live_allocations - allocations_before) / n);

  std::vector<int> order(2'000'000);
  std::mt19937 rng(1);
  for (int& i : order) i = static_cast<int>(rng() % n);
  auto visit = [](void* ctx, const Handle& value, const EntryMeta&) { *static_cast<void**>(ctx) = value.get(); };
  void* seen = nullptr;
  for (const bool one_key : {false, true}) {
    const double start = cpu_ns();
    for (int i : order) {
      const Key& k = keys[one_key ? 0 : i];
      tier.get(k.str, k.hash, visit, &seen);
    }
    std::printf("hit, %s: %.1f ns of CPU per get\n", one_key ? "one key" : "random keys", (cpu_ns() - start) / order.size());
  }
  return seen == &object ? 0 : 1;
}
