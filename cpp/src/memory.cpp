// The memory tier. The contract is in memory.hpp; this is how it is kept.
//
// Each shard owns, under its one mutex:
//   - `index`: an open-addressing table of Entry* (hash_index.hpp) keyed by the entry's own
//     key bytes; a lookup comes with the key's hash (Key::hash), so it neither hashes nor
//     allocates: a hit is one lock, one probe, one list splice and the visitor call. The
//     entry does not keep the hash: erase and the table's growth recompute it;
//   - an intrusive doubly-linked LRU list (head = most recently used, tail = next victim);
//   - per resource, an intrusive ring through that resource's entries (erase_prefix and
//     resource-restricted erase_pattern walk only these);
//   - per tag, interned once per shard, two intrusive rings through the entries carrying
//     it (erase_tags): those whose first tag it is, through a bare link placed right after
//     the entry (so its owner is found by address), and the others, through links that
//     name their owner. An entry holds one link per tag, so removing it unlinks it from
//     exactly the rings it is in and a ring never reaches a freed entry.
// Shard::remove is the one way out of every index: replace, evict, erase, expire and
// clear all go through it (clear through its bulk twin, Shard::drain).
//
// An entry is one allocation: the fixed fields, then its tag links, then the key's bytes
// and (for a shortened key) the canonical form's. Tag and resource names live in the
// shard's indexes, once however many entries carry them. The fixed fields are kept small
// (80 bytes): the value is a two-word Handle counted by the object itself, the resource is
// reached through its ring (a ring node that points at itself is an emptied sentinel, so an
// entry needs no pointer to its resource's record), the charge and the load time are 32-bit.
//
// Budget: bytes_ is global. put inserts under its shard's lock and, while the total is over
// max_bytes, evicts that shard's LRU tail (never the entry it just stored); if still over,
// enforce_budget visits the other shards in turn, taking one lock at a time, never two.
//
// Handles: a removal moves the entry's handle into a local of the caller, which destroys
// it after the shard lock is released, because in production a handle's destructor runs
// Python code that may call back into the tier.
#include "herdcache/memory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <new>
#include <type_traits>
#include <unordered_map>

#include "herdcache/errors.hpp"
#include "herdcache/hash_index.hpp"

namespace herdcache {
namespace {

constexpr std::size_t kMaxShards = std::size_t{1} << 16;

// Lets the name indexes be searched with a string_view without building a std::string.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view name) const noexcept {
    return std::hash<std::string_view>{}(name);
  }
};

struct Entry;

// A node of an intrusive circular list whose sentinel sits in the record it belongs to
// (records are stable: the indexes are node-based). A linked node never points at itself,
// so a node that does is a sentinel whose ring was just emptied.
struct Link {
  Link* prev;
  Link* next;
};

void link_after(Link& head, Link& node) noexcept {
  node = Link{&head, head.next};
  head.next->prev = &node;
  head.next = &node;
}

// Unlinks `node`; returns what followed it.
Link* unlink_node(Link& node) noexcept {
  node.prev->next = node.next;
  node.next->prev = node.prev;
  return node.next;
}

bool emptied(const Link* rest) noexcept { return rest->next == rest; }

// A resource as a shard knows it: the sentinel of the ring through its entries.
struct ResourceRing {
  Link entries;
  const std::string* name;  // the index's key for this record
};

// An entry's link into the ring of one of its tags after the first.
struct TagLink {
  Link link;
  Entry* owner;
};

// A tag as a shard knows it: the sentinels of its two rings (see the top of this file).
// Walking a ring to its sentinel (tags_of) tells the sentinel apart from entries' links
// by what precedes it: before a first tag's link lies its entry's tag_count, never 0 (see
// Entry), before `firsts` lies `no_tags`; the others sentinel's owner is null.
struct TagRing {
  std::uint64_t no_tags = 0;
  Link firsts;
  TagLink others;
  const std::string* name;  // the index's key for this record
};
static_assert(std::is_standard_layout_v<ResourceRing> && std::is_standard_layout_v<TagLink> &&
              std::is_standard_layout_v<TagRing>);

using ResourceIndex = std::unordered_map<std::string, ResourceRing, NameHash, std::equal_to<>>;
using TagIndex = std::unordered_map<std::string, TagRing, NameHash, std::equal_to<>>;

// A load time kept in whole microseconds, rounded up (0 stays "not known") and capped.
std::uint32_t load_us_of(Nanos load_ns) noexcept {
  if (load_ns <= 0) return 0;
  const Nanos us = (load_ns + 999) / 1000;
  return us >= std::numeric_limits<std::uint32_t>::max() ? std::numeric_limits<std::uint32_t>::max()
                                                          : static_cast<std::uint32_t>(us);
}

struct Entry {
  Entry* lru_prev = nullptr;
  Entry* lru_next = nullptr;
  Link res{nullptr, nullptr};   // in the resource's ring
  Lifetime life;
  Handle value;
  std::uint32_t charge = 0;     // < 2^32: put() keeps nothing larger
  std::uint32_t load_us = 0;    // load_us_of(the load's time)
  std::uint32_t full_size = 0;
  std::uint16_t key_size = 0;   // <= kMaxKeyBytes
  std::uint16_t tag_count = 0;
  // tag_count last: it ends where the first tag's Link begins (see TagRing). Followed
  // (with tags) by the first tag's Link and a TagLink per other tag, then the key bytes
  // and the full bytes.

  static Entry* of(Link* res) noexcept {
    return reinterpret_cast<Entry*>(reinterpret_cast<char*>(res) - offsetof(Entry, res));
  }
  static Entry* of_first_tag(Link* link) noexcept { return reinterpret_cast<Entry*>(link) - 1; }
  // Whether `link`, in a ring of first tags, is the ring's sentinel rather than an entry's.
  static bool is_firsts_sentinel(const Link* link) noexcept {
    std::uint16_t before;  // an entry's tag_count, or the last bytes of TagRing::no_tags
    std::memcpy(&before, reinterpret_cast<const char*>(link) - sizeof(before), sizeof(before));
    return before == 0;
  }
  static std::size_t tag_bytes(std::size_t tags) noexcept {
    return tags == 0 ? 0 : sizeof(Link) + (tags - 1) * sizeof(TagLink);
  }
  Link* first_tag() noexcept { return reinterpret_cast<Link*>(this + 1); }
  TagLink* other_tags() noexcept { return reinterpret_cast<TagLink*>(first_tag() + 1); }
  const char* text() const noexcept { return reinterpret_cast<const char*>(this + 1) + tag_bytes(tag_count); }
  std::string_view key() const noexcept { return {text(), key_size}; }  // Key::str
  std::uint64_t hash() const noexcept { return hash_bytes(key()); }    // Key::hash
  std::string_view canonical() const noexcept {
    return full_size == 0 ? key() : std::string_view(text() + key_size, full_size);
  }

  static std::size_t size_for(std::size_t tags, std::size_t key, std::size_t full) noexcept {
    return sizeof(Entry) + tag_bytes(tags) + key + full;
  }
  // The links are left for Shard::insert to fill.
  static Entry* create(const Key& key, std::size_t tag_count) {
    if (key.str.size() > std::numeric_limits<std::uint16_t>::max() ||
        key.full.size() > std::numeric_limits<std::uint32_t>::max() ||
        tag_count > std::numeric_limits<std::uint16_t>::max()) {
      throw InvalidArgument("MemoryTier: an entry takes at most 65535 tags and a 4 GiB key");
    }
    void* memory = ::operator new(size_for(tag_count, key.str.size(), key.full.size()));
    auto* e = new (memory) Entry;
    e->key_size = static_cast<std::uint16_t>(key.str.size());
    e->full_size = static_cast<std::uint32_t>(key.full.size());
    e->tag_count = static_cast<std::uint16_t>(tag_count);
    char* text = const_cast<char*>(e->text());
    std::memcpy(text, key.str.data(), key.str.size());
    std::memcpy(text + key.str.size(), key.full.data(), key.full.size());
    return e;
  }
  static void destroy(Entry* e) noexcept {
    e->~Entry();
    ::operator delete(e);
  }
};
static_assert(alignof(TagLink) <= alignof(Entry) && sizeof(Entry) % alignof(TagLink) == 0 &&
              sizeof(Link) % alignof(TagLink) == 0);
static_assert(std::is_standard_layout_v<Entry>);  // for Entry::of
static_assert(offsetof(Entry, tag_count) + sizeof(Entry::tag_count) == sizeof(Entry) &&
              offsetof(TagRing, firsts) == sizeof(TagRing::no_tags));  // for is_firsts_sentinel

struct EntryDeleter {
  void operator()(Entry* e) const noexcept { Entry::destroy(e); }
};
using EntryPtr = std::unique_ptr<Entry, EntryDeleter>;

bool has_glob_meta(std::string_view text) noexcept {
  return text.find_first_of("*?[\\") != std::string_view::npos;
}

// The key without its "<namespace>:", which is what erase_pattern globs over.
std::string_view without_namespace(std::string_view canonical) noexcept {
  const auto colon = canonical.find(':');
  return colon == std::string_view::npos ? canonical : canonical.substr(colon + 1);
}

}  // namespace

// What one entry costs beyond its key, value and tag bytes, as kEntryOverhead promises:
// the entry itself and its allocation's header (8 bytes), and its share of the index
// (9-byte slots, the table 7/16 to 7/8 full: 14 bytes at a typical 2/3). A production
// handle allocates nothing (handle.hpp). A tag costs a TagLink at most (the first one a
// bare Link). benchmarks/bench_memory.py --bytes measures the whole.
static_assert(sizeof(Entry) + 8 + 14 <= MemoryTier::kEntryOverhead);
static_assert(sizeof(TagLink) <= MemoryTier::kTagOverhead && sizeof(Link) <= sizeof(TagLink));

struct alignas(64) MemoryTier::Shard {
  MemoryTier* tier = nullptr;
  std::mutex mutex;
  HashIndex<Entry> index;
  Entry* lru_head = nullptr;
  Entry* lru_tail = nullptr;
  ResourceIndex resources;
  TagIndex tags;

  ~Shard() { drain(); }  // the tier clears first; this only guards against leaks

  Entry* find(std::string_view key, std::uint64_t hash) const { return index.find(key, hash); }

  void lru_unlink(Entry* e) noexcept {
    (e->lru_prev ? e->lru_prev->lru_next : lru_head) = e->lru_next;
    (e->lru_next ? e->lru_next->lru_prev : lru_tail) = e->lru_prev;
    e->lru_prev = e->lru_next = nullptr;
  }

  void lru_push_front(Entry* e) noexcept {
    e->lru_prev = nullptr;
    e->lru_next = lru_head;
    (lru_head ? lru_head->lru_prev : lru_tail) = e;
    lru_head = e;
  }

  void touch(Entry* e) noexcept {
    if (e == lru_head) return;
    lru_unlink(e);
    lru_push_front(e);
  }

  // The ring of `tag`, created empty when the shard does not know it yet (may throw).
  TagRing& ring_of(const std::string& tag) {
    auto [it, created] = tags.try_emplace(tag);
    if (created) {
      it->second.firsts = Link{&it->second.firsts, &it->second.firsts};
      it->second.others = TagLink{{&it->second.others.link, &it->second.others.link}, nullptr};
      it->second.name = &it->first;
    }
    return it->second;
  }

  // Unlinks an entry's link for its `i`th tag; the tag's record goes with its last entry.
  void unlink_tag(Entry* e, std::size_t i) noexcept {
    Link* rest = unlink_node(i == 0 ? *e->first_tag() : e->other_tags()[i - 1].link);
    if (!emptied(rest)) return;
    auto* ring = reinterpret_cast<TagRing*>(reinterpret_cast<char*>(rest) -
                                            (i == 0 ? offsetof(TagRing, firsts) : offsetof(TagRing, others)));
    if (emptied(&ring->firsts) && emptied(&ring->others.link)) tags.erase(tags.find(*ring->name));
  }

  // Takes ownership of `owned` and links it into every index under the `tags` it was
  // created for (sorted, unique). The caller has removed any entry under the same key. On
  // an allocation failure nothing stays linked.
  Entry* insert(EntryPtr owned, std::string_view resource, const std::vector<std::string>& tag_names) {
    Entry* e = owned.get();
    index.reserve_one();
    auto res = resources.find(resource);
    if (res == resources.end()) {
      res = resources.try_emplace(std::string(resource)).first;
      res->second.entries = Link{&res->second.entries, &res->second.entries};
      res->second.name = &res->first;
    }
    std::size_t linked = 0;
    try {
      for (; linked < e->tag_count; ++linked) {
        TagRing& ring = ring_of(tag_names[linked]);
        if (linked == 0) {
          link_after(ring.firsts, *e->first_tag());
        } else {
          TagLink& link = e->other_tags()[linked - 1];
          link.owner = e;
          link_after(ring.others.link, link.link);
        }
      }
    } catch (...) {
      for (std::size_t i = 0; i < linked; ++i) unlink_tag(e, i);
      if (emptied(&res->second.entries)) resources.erase(res);
      throw;
    }
    owned.release();
    index.insert(e);
    link_after(res->second.entries, e->res);
    lru_push_front(e);
    tier->bytes_.fetch_add(e->charge, std::memory_order_relaxed);
    tier->entries_.fetch_add(1, std::memory_order_relaxed);
    return e;
  }

  // Unlinks `e` from every index and frees it. Returns its handle, for the caller to
  // destroy once the lock is released.
  Handle remove(Entry* e) noexcept {
    index.erase(e);
    lru_unlink(e);
    if (Link* rest = unlink_node(e->res); emptied(rest)) {
      resources.erase(resources.find(*reinterpret_cast<ResourceRing*>(rest)->name));
    }
    for (std::size_t i = 0; i < e->tag_count; ++i) unlink_tag(e, i);
    tier->bytes_.fetch_sub(e->charge, std::memory_order_relaxed);
    tier->entries_.fetch_sub(1, std::memory_order_relaxed);
    Handle value = std::move(e->value);
    Entry::destroy(e);
    return value;
  }

  // Removes each entry of `resource` that `match` accepts; appends their handles to `dead`.
  template <class Match>
  void remove_from(std::string_view resource, Match match, std::vector<Handle>& dead) {
    auto res = resources.find(resource);
    if (res == resources.end()) return;
    // Removing the ring's last entry erases the ring's record, sentinel included: the
    // walk stops at the entry before the sentinel instead of coming back to it.
    const Link* sentinel = &res->second.entries;
    for (Link* l = sentinel->next; l != sentinel;) {
      Link* next = l->next;
      const bool last = next == sentinel;
      Entry* e = Entry::of(l);
      if (match(e)) dead.push_back(remove(e));
      if (last) break;
      l = next;
    }
  }

  // Evicts LRU tails, never `keep`, until the tier is within budget or only `keep` is left.
  void evict(const Entry* keep, std::vector<Handle>& dead) {
    const std::size_t max_bytes = tier->options_.max_bytes;
    while (lru_tail != nullptr && lru_tail != keep &&
           tier->bytes_.load(std::memory_order_relaxed) > max_bytes) {
      dead.push_back(remove(lru_tail));
      tier->evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Removes every entry; appends the handles to `dead` (when given) and returns the count.
  std::size_t drain(std::vector<Handle>* dead = nullptr) {
    std::size_t count = 0, bytes = 0;
    for (Entry* e = lru_head; e != nullptr; ++count) {
      Entry* next = e->lru_next;
      bytes += e->charge;
      if (dead) dead->push_back(std::move(e->value));
      Entry::destroy(e);
      e = next;
    }
    index.clear();
    resources.clear();
    tags.clear();
    lru_head = lru_tail = nullptr;
    if (tier && count > 0) {
      tier->bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      tier->entries_.fetch_sub(count, std::memory_order_relaxed);
    }
    return count;
  }
};

MemoryTier::MemoryTier(Options options, std::shared_ptr<const Clock> clock)
    : options_(options), clock_(std::move(clock)) {
  const std::size_t n = options_.shards;
  if (n == 0 || (n & (n - 1)) != 0 || n > kMaxShards) {
    throw InvalidArgument(
        fmt::format("MemoryTier: shards must be a power of two in [1, {}], got {}", kMaxShards, n));
  }
  if (options_.max_bytes == 0) throw InvalidArgument("MemoryTier: max_bytes must be > 0");
  if (!clock_) throw InvalidArgument("MemoryTier: clock must not be null");
  shards_ = std::make_unique<Shard[]>(n);
  for (std::size_t i = 0; i < n; ++i) shards_[i].tier = this;
}

MemoryTier::~MemoryTier() { clear(); }

MemoryTier::Shard& MemoryTier::shard_for(std::uint64_t hash) const noexcept {
  // High bits fold in, so shard choice and the map's bucket choice are not the same bits.
  return shards_[(hash ^ (hash >> 32)) & (options_.shards - 1)];
}

Lookup MemoryTier::get(std::string_view key, std::uint64_t hash, Visitor visit, void* ctx) {
  if (suspended_.load(std::memory_order_acquire)) return Lookup::Miss;
  Shard& shard = shard_for(hash);
  const Nanos now = clock_->monotonic_ns();  // read before locking: keeps the lock short
  Handle expired;  // declared before the lock, so destroyed after it is released
  {
    std::lock_guard lock(shard.mutex);
    Entry* e = shard.find(key, hash);
    if (e == nullptr) return Lookup::Miss;
    const Freshness state = freshness(e->life, now);
    if (state != Freshness::Expired) {
      shard.touch(e);
      if (visit) visit(ctx, e->value, EntryMeta{e->life, Nanos{e->load_us} * 1000});
      return state == Freshness::Fresh ? Lookup::Fresh : Lookup::Stale;
    }
    expired = shard.remove(e);
  }
  expirations_.fetch_add(1, std::memory_order_relaxed);
  return Lookup::Miss;
}

MemoryTier::Put MemoryTier::put(const Key& key, EntryData data, WriteFence::Seq since) {
  // Entries do not keep the hash: the index recomputes it, and must find what lookups do.
  if (key.hash != hash_bytes(key.str)) {
    throw InvalidArgument(fmt::format("MemoryTier: the hash of key {:?} is not hash_bytes of it", key.str));
  }
  std::sort(data.tags.begin(), data.tags.end());
  data.tags.erase(std::unique(data.tags.begin(), data.tags.end()), data.tags.end());
  std::size_t charge = key.str.size() + key.full.size() + data.value_bytes + kEntryOverhead;
  for (const std::string& tag : data.tags) charge += tag.size() + kTagOverhead;

  Shard& shard = shard_for(key.hash);
  std::vector<Handle> dead;  // destroyed after the lock is released (declared before it)
  if (charge > options_.max_bytes || charge > std::numeric_limits<std::uint32_t>::max()) {
    if (!admits(since, key, data.tags)) return {Put::Fenced};
    rejected_.fetch_add(1, std::memory_order_relaxed);
    // The caller meant to replace the old value: keeping it would serve what they replaced.
    std::lock_guard lock(shard.mutex);
    if (Entry* old = shard.find(key.str, key.hash)) dead.push_back(shard.remove(old));
    return {Put::NotKept};
  }

  // Built before locking, so the lock covers only the index updates.
  EntryPtr entry(Entry::create(key, data.tags.size()));
  entry->charge = static_cast<std::uint32_t>(charge);
  entry->life = data.life;
  entry->load_us = load_us_of(data.load_ns);
  entry->value = std::move(data.value);

  bool over_budget;
  {
    std::lock_guard lock(shard.mutex);
    // Checked under the lock the entry goes in under (see write_fence.hpp, suspend()).
    if (suspended_.load(std::memory_order_acquire)) {
      // Not kept; and what it replaces must not be served again if the tier resumes.
      if (Entry* old = shard.find(key.str, key.hash)) dead.push_back(shard.remove(old));
      dead.push_back(std::move(entry->value));
      return {admits(since, key, data.tags) ? Put::NotKept : Put::Fenced};
    }
    if (!admits(since, key, data.tags)) {
      dead.push_back(std::move(entry->value));
      return {Put::Fenced};
    }
    if (Entry* old = shard.find(key.str, key.hash)) dead.push_back(shard.remove(old));
    Entry* stored = shard.insert(std::move(entry), key.resource, data.tags);
    shard.evict(stored, dead);
    over_budget = bytes_.load(std::memory_order_relaxed) > options_.max_bytes;
  }
  dead.clear();  // may run Python code: no lock held
  if (over_budget) enforce_budget(static_cast<std::size_t>(&shard - shards_.get()));
  return {Put::Stored};
}

void MemoryTier::suspend() noexcept { suspended_.store(true, std::memory_order_seq_cst); }

void MemoryTier::resume() noexcept { suspended_.store(false, std::memory_order_seq_cst); }

bool MemoryTier::admits(WriteFence::Seq since, const Key& key, const std::vector<std::string>& tags) {
  if (fence_.allows(since, key, tags)) return true;
  fenced_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void MemoryTier::enforce_budget(std::size_t first_shard) {
  // The inserting shard was already trimmed under its lock; now the others, in turn.
  const std::size_t n = options_.shards;
  std::vector<Handle> dead;
  for (std::size_t i = 1; i < n; ++i) {
    if (bytes_.load(std::memory_order_relaxed) <= options_.max_bytes) return;
    Shard& shard = shards_[(first_shard + i) & (n - 1)];
    {
      std::lock_guard lock(shard.mutex);
      shard.evict(nullptr, dead);
    }
    dead.clear();
  }
}

bool MemoryTier::erase(std::string_view key, std::uint64_t hash) {
  fence_.record_key(key);
  Shard& shard = shard_for(hash);
  Handle dead;
  std::lock_guard lock(shard.mutex);  // destroyed before `dead`
  Entry* e = shard.find(key, hash);
  if (e == nullptr) return false;
  dead = shard.remove(e);
  return true;
}

std::size_t MemoryTier::erase_prefix(std::string_view resource, std::string_view prefix) {
  fence_.record_prefix(resource, prefix);
  std::size_t removed = 0;
  std::vector<Handle> dead;
  for (std::size_t i = 0; i < options_.shards; ++i) {
    Shard& shard = shards_[i];
    {
      std::lock_guard lock(shard.mutex);
      shard.remove_from(resource, [&](const Entry* e) { return key_has_prefix(e->canonical(), prefix); }, dead);
    }
    removed += dead.size();
    dead.clear();
  }
  return removed;
}

std::size_t MemoryTier::erase_tags(const std::vector<std::string>& tags) {
  fence_.record_tags(tags);
  std::size_t removed = 0;
  std::vector<Entry*> victims;
  std::vector<Handle> dead;
  for (std::size_t i = 0; i < options_.shards; ++i) {
    Shard& shard = shards_[i];
    {
      std::lock_guard lock(shard.mutex);
      for (const std::string& tag : tags) {
        auto it = shard.tags.find(tag);
        if (it == shard.tags.end()) continue;
        // Copied first: removing an entry edits this ring (and may erase it). An entry
        // carrying several of `tags` is gone from the later rings, so it counts once.
        victims.clear();
        const TagRing& ring = it->second;
        for (Link* l = ring.firsts.next; l != &ring.firsts; l = l->next) victims.push_back(Entry::of_first_tag(l));
        for (Link* l = ring.others.link.next; l != &ring.others.link; l = l->next) {
          victims.push_back(reinterpret_cast<TagLink*>(l)->owner);
        }
        for (Entry* e : victims) dead.push_back(shard.remove(e));
      }
    }
    removed += dead.size();
    dead.clear();
  }
  return removed;
}

std::size_t MemoryTier::erase_pattern(std::string_view pattern) {
  fence_.record_pattern(pattern);
  // A literal first segment names the one resource whose keys can match: keys are
  // "<ns>:<resource>[:...]" and a resource never contains ':'.
  const std::string_view first = pattern.substr(0, pattern.find(':'));
  const bool one_resource = !has_glob_meta(first);
  std::size_t removed = 0;
  std::vector<Handle> dead;
  for (std::size_t i = 0; i < options_.shards; ++i) {
    Shard& shard = shards_[i];
    {
      std::lock_guard lock(shard.mutex);
      if (one_resource) {
        shard.remove_from(first, [&](const Entry* e) { return glob_match(pattern, without_namespace(e->canonical())); },
                          dead);
      } else {
        for (Entry *e = shard.lru_head, *next; e != nullptr; e = next) {
          next = e->lru_next;
          if (glob_match(pattern, without_namespace(e->canonical()))) {
            dead.push_back(shard.remove(e));
          }
        }
      }
    }
    removed += dead.size();
    dead.clear();
  }
  return removed;
}

std::size_t MemoryTier::erase_tagged_by_pattern(std::string_view marker, std::string_view pattern) {
  std::vector<std::string> matching;
  for (std::size_t i = 0; i < options_.shards; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    for (const auto& [name, ring] : shards_[i].tags) {
      std::string_view tag(name);
      if (tag.size() > marker.size() && tag.substr(0, marker.size()) == marker &&
          glob_match(pattern, without_namespace(tag.substr(marker.size())))) {
        matching.push_back(name);
      }
    }
  }
  std::sort(matching.begin(), matching.end());
  matching.erase(std::unique(matching.begin(), matching.end()), matching.end());
  return matching.empty() ? 0 : erase_tags(matching);
}

std::vector<std::string> MemoryTier::tags_of(std::string_view key, std::uint64_t hash) const {
  std::vector<std::string> tags;
  Shard& shard = shard_for(hash);
  std::lock_guard lock(shard.mutex);
  Entry* e = shard.find(key, hash);
  if (e == nullptr) return tags;
  // Each link's ring, walked to its sentinel: its TagRing names it.
  for (std::size_t i = 0; i < e->tag_count; ++i) {
    const TagRing* ring;
    if (i == 0) {
      const Link* l = e->first_tag()->next;
      while (!Entry::is_firsts_sentinel(l)) l = l->next;
      ring = reinterpret_cast<const TagRing*>(reinterpret_cast<const char*>(l) - offsetof(TagRing, firsts));
    } else {
      const Link* l = e->other_tags()[i - 1].link.next;
      while (reinterpret_cast<const TagLink*>(l)->owner != nullptr) l = l->next;
      ring = reinterpret_cast<const TagRing*>(reinterpret_cast<const char*>(l) - offsetof(TagRing, others));
    }
    tags.push_back(*ring->name);
  }
  return tags;
}

std::size_t MemoryTier::clear() {
  fence_.record_all();
  std::size_t removed = 0;
  std::vector<Handle> dead;
  for (std::size_t i = 0; i < options_.shards; ++i) {
    {
      std::lock_guard lock(shards_[i].mutex);
      removed += shards_[i].drain(&dead);
    }
    dead.clear();
  }
  return removed;
}

MemoryStats MemoryTier::stats() const {
  MemoryStats out;
  out.bytes = bytes_.load(std::memory_order_relaxed);
  out.entries = entries_.load(std::memory_order_relaxed);
  out.max_bytes = options_.max_bytes;
  out.evictions = evictions_.load(std::memory_order_relaxed);
  out.expirations = expirations_.load(std::memory_order_relaxed);
  out.rejected = rejected_.load(std::memory_order_relaxed);
  out.fenced = fenced_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace herdcache
