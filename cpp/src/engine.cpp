#include "herdcache/engine.hpp"

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

Engine::Engine(EngineOptions options, std::shared_ptr<const Clock> clock)
    : options_(std::move(options)),
      clock_(clock ? std::move(clock) : system_clock()),
      memory_(MemoryTier::Options{options_.memory_max_bytes, options_.memory_shards}, clock_) {
  options_.default_policy.validate();
  KeyBuilder probe;
  probe.reset(options_.ns, "probe");  // validates the namespace
}

void Engine::set_policy(std::string_view name, const Policy& policy) {
  policy.validate();
  Resource& res = resource(name);
  std::lock_guard lock(resources_mutex_);
  policies_[std::string(name)] = policy;
  res.policy = policy;
}

Resource& Engine::resource(std::string_view name) {
  std::lock_guard lock(resources_mutex_);
  if (auto it = resources_.find(std::string(name)); it != resources_.end()) return *it->second;
  KeyBuilder probe;
  probe.reset(options_.ns, name);  // validates the resource name before registering it
  Resource& res = resource_store_.emplace_back();
  res.name = std::string(name);
  auto policy = policies_.find(res.name);
  res.policy = policy != policies_.end() ? policy->second : options_.default_policy;
  resources_.emplace(res.name, &res);
  return res;
}

std::vector<Resource*> Engine::resources() const {
  std::lock_guard lock(resources_mutex_);
  std::vector<Resource*> out;
  out.reserve(resource_store_.size());
  for (auto& res : resource_store_) out.push_back(const_cast<Resource*>(&res));
  return out;
}

void Engine::begin_key(KeyBuilder& builder, std::string_view resource) const {
  builder.reset(options_.ns, resource);
}

Lookup Engine::lookup(std::string_view key, std::uint64_t hash, Resource& res,
                      MemoryTier::Visitor visit, void* ctx) {
  if (!res.policy.memory) {
    res.counters.add(Counter::MemoryMisses);
    return Lookup::Miss;
  }
  Lookup found = memory_.get(key, hash, visit, ctx);
  if (found == Lookup::Fresh) {
    res.counters.add(Counter::MemoryHits);
    res.counters.add(Counter::Hits);
  } else if (found == Lookup::Miss) {
    res.counters.add(Counter::MemoryMisses);
  }
  return found;
}

std::optional<Lifetime> Engine::store(const Key& key, Resource& res, Handle value, std::size_t value_bytes,
                                      std::vector<std::string> tags, double ttl_override_s, Nanos load_ns,
                                      WriteFence::Seq since) {
  Lifetime life = lifetime_for(res.policy, clock_->monotonic_ns(), ttl_override_s, random_unit());
  if (!keep(key, res, std::move(value), value_bytes, std::move(tags), life, load_ns, since)) return std::nullopt;
  return life;
}

bool Engine::keep(const Key& key, Resource& res, Handle value, std::size_t value_bytes,
                  std::vector<std::string> tags, const Lifetime& life, Nanos load_ns, WriteFence::Seq since) {
  if (!res.policy.memory || life.stale_until <= clock_->monotonic_ns()) {
    // Nothing kept in memory; the fence still decides whether the value may be written on.
    bool allowed = memory_.admits(since, key, tags);
    if (res.policy.memory) memory_.erase(key.str, key.hash);  // a zero lifetime replaces nothing with nothing
    return allowed;
  }
  const auto put = memory_.put(key, EntryData{std::move(value), value_bytes, life, load_ns, std::move(tags)}, since);
  return put.outcome != MemoryTier::Put::Fenced;  // not kept (too large, suspended) is still written on
}

// Each with the entries built from what it removes (dependency tags, invalidation.hpp).
std::size_t Engine::invalidate_key(const Key& key) { return erase_key(memory_, key.str, key.hash); }

std::size_t Engine::invalidate_prefix(std::string_view res, std::string_view canonical_prefix) {
  return erase_prefix(memory_, res, canonical_prefix);
}

std::size_t Engine::invalidate_tags(const std::vector<std::string>& tags) {
  return memory_.erase_tags(tags);
}

std::size_t Engine::invalidate_pattern(std::string_view pattern) {
  if (pattern.empty()) throw InvalidArgument("pattern must not be empty");
  return erase_pattern(memory_, pattern);
}

std::size_t Engine::clear() { return memory_.clear(); }

bool Engine::should_refresh_early(const Policy& policy, const EntryMeta& meta, Nanos now) {
  // XFetch (Vattani et al.): refresh when now - delta * beta * ln(rand) >= expiry.
  if (policy.early_refresh <= 0 || meta.load_ns <= 0) return false;
  double u = random_unit();
  if (u <= 0) u = 1e-12;
  double gap = -static_cast<double>(meta.load_ns) * policy.early_refresh * std::log(u);
  return static_cast<double>(now) + gap >= static_cast<double>(meta.life.fresh_until);
}

void Engine::connect_redis(const RedisUrl& url, RedisOptions options, std::string instance_id,
                           std::string signing_key, RedisTier::LogCallback log) {
  if (redis_) throw InvalidArgument("redis is already connected");
  // Sockets wait in real time: the I/O threads use the system clock even when the
  // engine's lifetimes run on an injected one.
  redis_ = std::make_unique<RedisTier>(options_.ns, std::move(instance_id), url, options, memory_,
                                       system_clock(), std::move(log), std::move(signing_key));
}

std::optional<Lifetime> Engine::store_shared(const Key& key, Resource& res, Handle value, std::size_t value_bytes,
                                             std::vector<std::string> tags, Nanos fresh_until_wall,
                                             Nanos stale_until_wall, Nanos load_ns, WriteFence::Seq since) {
  Nanos mono = clock_->monotonic_ns();
  Nanos wall = clock_->wall_ns();
  Lifetime life{mono + (fresh_until_wall - wall), mono + (stale_until_wall - wall)};
  if (!keep(key, res, std::move(value), value_bytes, std::move(tags), life, load_ns, since)) return std::nullopt;
  return life;
}

Lifetime Engine::to_wall(const Lifetime& life) const noexcept {
  Nanos shift = clock_->wall_ns() - clock_->monotonic_ns();
  return {life.fresh_until + shift, life.stale_until + shift};
}

void Engine::close() noexcept {
  closed_.store(true, std::memory_order_release);
  if (redis_) redis_->close();
}

void Engine::check_open() const {
  if (closed()) throw ClosedError("the cache manager is closed");
}

double Engine::random_unit() noexcept {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace herdcache
