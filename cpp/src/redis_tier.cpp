// The shared tier's protocol (redis_tier.hpp has the design): reads, writes, leases and
// invalidations as commands and scripts, their replies as TierResults, and the
// connection events that decide whether the memory tier is trusted.
//
// One file because its parts share one state and one rule: every read, write and
// invalidation checks or moves the same version cache, journal and trust state, and
// the order of those steps (forget before sending, learn only within an epoch) is the
// correctness argument. The pieces that stand alone are already their own files: the
// entry codec, fill waiters, journal, version cache, reply-error rule and scripts.
#include "herdcache/redis_tier.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "herdcache/errors.hpp"
#include "herdcache/scripts.hpp"

namespace herdcache {

namespace {
std::string glob_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// A lease state as the read script spells it (the same numbers: codes.hpp).
constexpr std::int64_t code(LeaseState lease) { return static_cast<std::int64_t>(lease); }

std::string describe(const RedisResult& result) {
  if (!result.ok()) return fmt::format("{}: {}", to_string(result.error_kind()), result.error_message());
  return result.reply().is_error() ? result.reply().str() : result.reply().debug_string();
}
}  // namespace

struct RedisTier::Script {
  std::string_view source;
  bool changes;  // it writes: its outcome counts for the writes-failing rule
  mutable std::mutex mutex;
  mutable std::string sha;  // empty until SCRIPT LOAD answered (EVAL is used meanwhile)

  std::string get_sha() const {
    std::lock_guard lock(mutex);
    return sha;
  }
  void set_sha(std::string value) const {
    std::lock_guard lock(mutex);
    sha = std::move(value);
  }
};

RedisTier::RedisTier(std::string ns, std::string instance_id, const RedisUrl& url,
                     RedisOptions options, MemoryTier& memory, std::shared_ptr<const Clock> clock,
                     LogCallback log, std::string signing_key)
    : ns_(std::move(ns)),
      instance_id_(std::move(instance_id)),
      channel_(fmt::format("herdcache:{}:invalidate", ns_)),
      fill_channel_(fmt::format("herdcache:{}:filled", ns_)),
      generation_key_(ns_ + "#gen"),
      memory_(memory),
      clock_(std::move(clock)),
      log_(std::move(log)),
      read_(new Script{scripts::kRead, false, {}, {}}),
      write_(new Script{scripts::kWrite, true, {}, {}}),
      bump_(new Script{scripts::kBump, true, {}, {}}),
      delete_(new Script{scripts::kDelete, true, {}, {}}),
      release_(new Script{scripts::kRelease, true, {}, {}}),
      incr_(new Script{scripts::kIncr, true, {}, {}}),
      unlink_batch_(new Script{scripts::kUnlinkBatch, true, {}, {}}),
      codec_(std::move(signing_key)) {
  // The parser knows cluster URLs; this tier talks to one server, where a cluster's keys
  // would fail with CROSSSLOT and MOVED. Refused before any connection is made.
  if (url.uses_cluster()) {
    throw InvalidArgument(fmt::format(
        "{}: Redis Cluster URLs are recognised, but the cluster tier is not available in this version of "
        "herdcache (use a redis://, rediss:// or redis+sentinel:// url)",
        url.describe()));
  }
  // One resolver for both connections: they follow the same master.
  if (url.uses_sentinel()) sentinel_ = std::make_shared<SentinelResolver>(url, options, clock_);
  client_ = std::make_unique<RedisClient>(
      url, options, [this](const ConnectionEvent& e) { on_client_event(e); }, clock_, sentinel_);
  subscriber_ = std::make_unique<RedisSubscriber>(
      url, options, std::vector<std::string>{channel_, fill_channel_},
      [this](const std::string& channel, const std::string& payload) { on_message(channel, payload); },
      [this](const ConnectionEvent& e) { on_subscriber_event(e); }, clock_, sentinel_);
  // The client's first "connected" event may have fired before client_ was assigned.
  started_.store(true);
  if (connected_once_.load()) on_connected();
}

RedisTier::~RedisTier() { close(); }

void RedisTier::close() {
  if (subscriber_) subscriber_->close();
  if (client_) client_->close();
  if (sentinel_) sentinel_->close();
}

void RedisTier::eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
                     RedisClient::Callback done) {
  auto build = [&script](const std::vector<std::string>& keys, const std::vector<std::string>& args,
                         const std::string& sha) {
    std::vector<std::string_view> argv;
    argv.reserve(3 + keys.size() + args.size());
    const std::string count = std::to_string(keys.size());
    argv.emplace_back(sha.empty() ? "EVAL" : "EVALSHA");
    argv.emplace_back(sha.empty() ? script.source : std::string_view(sha));
    argv.emplace_back(count);
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return Command(argv);
  };
  if (script.changes) {
    done = [this, done = std::move(done)](RedisResult result) mutable {
      note_write(result);
      done(std::move(result));
    };
  }
  const std::string sha = script.get_sha();
  Command command = build(keys, args, sha);
  client_->submit(std::move(command), [this, &script, build, by_sha = !sha.empty(), keys = std::move(keys),
                                       args = std::move(args), done = std::move(done)](RedisResult result) mutable {
    // A restarted or flushed server forgot the script: run it by source once, reload it.
    // Once: the re-run is by source, which no flush can refuse, so nothing loops.
    if (by_sha && result.ok() && result.reply().is_error() &&
        classify_reply_error(result.reply().str()) == ReplyError::NoScript) {
      scripts_reloaded_.fetch_add(1, std::memory_order_relaxed);
      script.set_sha({});
      client_->submit({"SCRIPT", "LOAD", script.source}, [&script](RedisResult r) {
        if (r.ok() && r.reply().is_bulk()) script.set_sha(r.reply().str());
      });
      client_->submit(build(keys, args, {}), std::move(done));
      return;
    }
    done(std::move(result));
  });
}

std::string RedisTier::version_key(std::string_view tag) const {
  // An entry built from a key depends on that key's prefix levels as they are.
  const bool prefix = tag.size() > kPrefixDependency.size() && tag.substr(0, kPrefixDependency.size()) == kPrefixDependency;
  return prefix ? prefix_version_key(ns_, tag.substr(kPrefixDependency.size())) : tag_version_key(ns_, tag);
}

std::vector<std::string> RedisTier::dependencies(std::string_view canonical,
                                                 const std::vector<std::string>& tags) const {
  std::vector<std::string> deps;
  for (const auto& level : prefix_levels(canonical)) deps.push_back(prefix_version_key(ns_, level));
  for (const auto& tag : tags) deps.push_back(version_key(tag));
  return deps;
}

void RedisTier::versions(const std::vector<std::string>& tags, Callback cb) {
  // Known versions are as current as this instance's memory tier (version_cache.hpp), so
  // a dependency read from memory is judged by what this instance knew when it read it.
  TierResult out;
  out.status = TierResult::Status::Done;
  std::vector<std::string> unknown;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < tags.size(); ++i) {
    std::string name = version_key(tags[i]);
    std::optional<std::string> known = versions_.find(name);
    out.versions.push_back(known ? std::move(*known) : std::string());
    if (!known) {
      unknown.push_back(std::move(name));
      at.push_back(i);
    }
  }
  if (unknown.empty()) return cb(std::move(out));
  std::vector<std::string_view> mget{"MGET"};
  mget.insert(mget.end(), unknown.begin(), unknown.end());
  const std::uint64_t epoch = versions_.epoch();  // before the MGET can see any version
  client_->submit(Command(mget), [this, epoch, out = std::move(out), unknown = std::move(unknown), at = std::move(at),
                                  cb = std::move(cb)](RedisResult result) mutable {
    if (!result.ok() || !result.reply().is_array() || result.reply().elements().size() != unknown.size()) {
      return cb(TierResult::fault(describe(result)));
    }
    std::vector<std::string> seen;
    for (auto& v : result.reply().elements()) seen.push_back(v.is_nil() ? "0" : std::move(v.str()));
    versions_.learn(unknown, seen, epoch);
    for (std::size_t i = 0; i < at.size(); ++i) out.versions[at[i]] = std::move(seen[i]);
    cb(std::move(out));
  });
}

// What a read needs again when its plain HMGET must be followed by the script. For a read
// without a lease (get()) that is its key and the time, inline: the hot path allocates
// nothing. A read that wants a lease also carries the token, and what its dependencies'
// version keys are made from (made only if the script runs: a plain hit needs none).
struct RedisTier::ReadArgs {
  struct Lease {
    std::string token;
    std::string canonical;                  // Key::canonical()
    std::vector<std::string> tags;          // the tags a write would carry
  };
  SmallString<64> key;          // Key::str
  std::unique_ptr<Lease> lease; // null: no lease wanted
  Nanos lease_ns, refresh_before_wall, now_wall;
};

// An entry read from Redis (e[v..v+4] the stored v f s d t, `x` the stored record) as
// the rest of the engine sees it: a forged one is a Miss marked forged, counted and logged.
TierResult RedisTier::entry_hit(std::string_view key, std::vector<Reply>& e, std::size_t v, std::string_view x) {
  TierResult out = codec_.hit(key, e, v, x);
  if (out.forged) note_forged(key);
  return out;
}

void RedisTier::note_forged(std::string_view key) {
  forged_.fetch_add(1, std::memory_order_relaxed);
  if (log_) log_(kLogWarning, fmt::format("ignoring {} in redis: its signature does not verify", key));
}

void RedisTier::read(const Key& key, const std::vector<std::string>& tags, const std::string& lease_token,
                     Nanos lease_ns, Nanos refresh_before_wall, Nanos now_wall, Callback cb, bool plain_first) {
  ReadArgs args{SmallString<64>(key.str), nullptr, lease_ns, refresh_before_wall, now_wall};
  // Only a read that may lead to a write (it asks for a lease) needs the versions.
  if (!lease_token.empty()) args.lease.reset(new ReadArgs::Lease{lease_token, std::string(key.canonical()), tags});
  // Known versions are only as good as the invalidation channel: without it, ask Redis.
  if (plain_first && subscriber_connected_.load(std::memory_order_acquire) && versions_.size() > 0) {
    read_plain(std::move(args), std::move(cb));
  } else {
    read_scripted(args, std::move(cb));
  }
}

void RedisTier::read_plain(ReadArgs args, Callback cb) {
  Command hmget{"HMGET", args.key.view(), "v", "f", "s", "d", "t", "x"};  // before args moves
  auto done = [this, args = std::move(args), cb = std::move(cb)](RedisResult result) mutable {
    if (!result.ok() || !result.reply().is_array() || result.reply().elements().size() != 6) {
      cb(TierResult::fault(describe(result)));
      return;
    }
    auto& e = result.reply().elements();
    const bool wants_lease = args.lease != nullptr;
    // Absent or stale by the engine's clock: a miss, unless the miss needs its lease.
    if (e[0].is_nil() || parse_ms_as_ns(e[2].str()) <= args.now_wall) {
      if (wants_lease) return read_scripted(args, std::move(cb));
      reads_plain_.fetch_add(1, std::memory_order_relaxed);
      return cb(TierResult::miss());
    }
    // Due for a refresh: only the script can grant the lease for it.
    if (wants_lease && parse_ms_as_ns(e[1].str()) <= args.refresh_before_wall) {
      return read_scripted(args, std::move(cb));
    }
    if (versions_.check(e[5].str()) != VersionCache::Check::Valid) return read_scripted(args, std::move(cb));
    reads_plain_.fetch_add(1, std::memory_order_relaxed);
    cb(entry_hit(args.key.view(), e, 0, e[5].str()));
  };
  static_assert(sizeof(done) <= RedisClient::kCallbackBytes, "a plain read's callback must not allocate");
  client_->submit(std::move(hmget), std::move(done));
}

void RedisTier::read_scripted(const ReadArgs& a, Callback cb) {
  reads_scripted_.fetch_add(1, std::memory_order_relaxed);
  const std::string_view key = a.key.view();
  std::vector<std::string> args{a.lease ? a.lease->token : std::string(),
                                std::to_string(std::max<Nanos>(a.lease_ns / kNanosPerMs, 1)),
                                std::to_string(a.refresh_before_wall / kNanosPerMs),
                                std::to_string(a.now_wall / kNanosPerMs)};
  std::vector<std::string> deps;
  if (a.lease) {
    deps = dependencies(a.lease->canonical, a.lease->tags);
    args.insert(args.end(), deps.begin(), deps.end());
  }
  const std::uint64_t epoch = versions_.epoch();  // before the script can see any version
  eval(*read_, {std::string(key), lease_key(key), waiters_key(key), generation_key_}, std::move(args),
       [this, epoch, key = std::string(key), deps = std::move(deps), cb = std::move(cb)](RedisResult result) {
         if (!result.ok() || !result.reply().is_array() || result.reply().elements().empty()) {
           cb(TierResult::fault(describe(result)));
           return;
         }
         auto& e = result.reply().elements();
         TierResult out;
         // The guard a write after this read proves: from `at`, generation then versions.
         auto take_guard = [&](std::size_t at) {
           out.generation = std::move(e[at].str());
           for (std::size_t i = at + 1; i < e.size(); ++i) out.versions.push_back(std::move(e[i].str()));
           versions_.learn(deps, out.versions, epoch);
         };
         if (e[0].as_int() == 1 && (e.size() == 8 || e.size() == 9 + deps.size())) {
           out = entry_hit(key, e, 1, e[7].str());  // a forged one: a Miss, its lease kept
           out.lease = e[6].as_int() == code(LeaseState::Granted) ? LeaseState::Granted : LeaseState::None;
           if (!out.forged) versions_.learn(e[7].str(), epoch);
           if (e.size() > 8) take_guard(8);  // the lease to refresh it: its write's guard
         } else if (e[0].as_int() == 0 && e.size() >= 2 &&
                    e.size() == 3 + deps.size() + (e[1].as_int() == code(LeaseState::HeldElsewhere) ? 1 : 0)) {
           out.status = TierResult::Status::Miss;
           out.lease = static_cast<LeaseState>(
               std::clamp(e[1].as_int(), code(LeaseState::None), code(LeaseState::HeldElsewhere)));
           if (out.lease == TierResult::Lease::HeldElsewhere) {
             out.lease_holder = std::move(e.back().str());
             e.pop_back();
           }
           take_guard(2);
         } else {
           cb(TierResult::fault("unexpected reply to the read script: " + result.reply().debug_string()));
           return;
         }
         cb(std::move(out));
       });
}

void RedisTier::write(const Key& key, std::string payload, Nanos fresh_until_wall,
                      Nanos stale_until_wall, Nanos load_ns, const std::vector<std::string>& tags,
                      const WriteGuard& guard, Callback cb) {
  auto deps = dependencies(key.canonical(), tags);
  const bool checked = guard.versions.size() == deps.size() && !deps.empty();
  if (codec_.signs() && !checked && !deps.empty()) {
    // A signed entry's MAC covers its dependency record, so the versions it records must
    // be known before it is written: read them, then write checked against them.
    std::vector<std::string_view> mget{"MGET"};
    mget.insert(mget.end(), deps.begin(), deps.end());
    client_->submit(Command(mget), [this, key, payload = std::move(payload), fresh_until_wall, stale_until_wall,
                                    load_ns, tags, g = guard, cb = std::move(cb)](RedisResult result) mutable {
      if (!result.ok() || !result.reply().is_array()) return cb(TierResult::fault(describe(result)));
      g.versions.clear();
      for (auto& v : result.reply().elements()) g.versions.push_back(v.is_nil() ? "0" : std::move(v.str()));
      write(key, std::move(payload), fresh_until_wall, stale_until_wall, load_ns, tags, g, std::move(cb));
    });
    return;
  }
  std::vector<std::string> args;
  args.reserve(13 + deps.size() * 2);
  args.emplace_back();  // v, below
  args.push_back(std::to_string(fresh_until_wall / kNanosPerMs));
  args.push_back(std::to_string(std::max<Nanos>(stale_until_wall / kNanosPerMs, 1)));
  args.push_back(std::to_string(load_ns / kNanosPerMs));
  args.push_back(join_lines(tags));
  args.emplace_back(checked ? "e" : "c");
  args.push_back(guard.lease_token);
  args.push_back(guard.generation);
  args.push_back(fill_channel_);
  using Condition = WriteGuard::Condition;
  args.emplace_back(guard.condition == Condition::Absent ? "nx" : guard.condition == Condition::Equals ? "eq" : "");
  args.push_back(guard.condition == Condition::Absent ? std::to_string(guard.now_wall / kNanosPerMs)
                                                      : guard.expected_payload);
  args.push_back(channel_);
  args.push_back(guard.announce ? encode_invalidation(Invalidation::key(instance_id_, key.str)) : std::string());
  std::string record;  // x as the script will store it (checked writes)
  for (std::size_t i = 0; i < deps.size(); ++i) {
    if (checked) record.append(deps[i]).append(1, '\n').append(guard.versions[i]).append(1, '\n');
    args.push_back(std::move(deps[i]));
    if (checked) args.push_back(guard.versions[i]);
  }
  args[0] = codec_.seal(key.str, std::move(payload), {args[1], args[2], args[3], args[4], record});
  eval(*write_, {key.str, lease_key(key.str), waiters_key(key.str), generation_key_}, std::move(args),
       [this, entry = key.str, hash = key.hash, cb = std::move(cb)](RedisResult result) {
         if (!result.ok() || !result.reply().is_integer()) {
           cb(TierResult::fault(describe(result)));
           return;
         }
         TierResult out;
         std::int64_t code = result.reply().as_int();
         out.status = code == 1   ? TierResult::Status::Done
                      : code == 2 ? TierResult::Status::Conflict
                                  : TierResult::Status::Refused;
         out.count = code;
         if (out.status == TierResult::Status::Refused) {
           // An invalidation landed while the value loaded: what this instance keeps of it
           // is out of date too.
           writes_refused_.fetch_add(1, std::memory_order_relaxed);
           memory_.erase(entry, hash);
         }
         cb(std::move(out));
       });
}

bool RedisTier::signs() const noexcept { return codec_.signs(); }

void RedisTier::incr(const Key& key, std::int64_t delta, Nanos fresh_until_wall, Nanos stale_until_wall,
                     bool set_lifetime, const std::vector<std::string>& tags, Nanos now_wall, Callback cb) {
  if (codec_.signs()) return cb(TierResult::fault("a signed entry cannot be incremented in Redis"));
  std::vector<std::string> args;
  auto deps = dependencies(key.canonical(), tags);
  args.reserve(8 + deps.size());
  args.push_back(std::to_string(delta));
  args.push_back(std::to_string(now_wall / kNanosPerMs));
  args.push_back(std::to_string(fresh_until_wall / kNanosPerMs));
  args.push_back(std::to_string(std::max<Nanos>(stale_until_wall / kNanosPerMs, 1)));
  args.emplace_back(set_lifetime ? "1" : "");
  args.push_back(join_lines(tags));
  args.push_back(channel_);
  args.push_back(encode_invalidation(Invalidation::key(instance_id_, key.str)));
  for (auto& dep : deps) args.push_back(std::move(dep));
  eval(*incr_, {key.str}, std::move(args), [this, entry = key.str, hash = key.hash, cb = std::move(cb)](RedisResult result) {
    if (!result.ok() || !result.reply().is_array() || result.reply().elements().empty() ||
        !result.reply().elements()[0].is_integer()) {
      return cb(TierResult::fault(describe(result)));
    }
    auto& parts = result.reply().elements();
    TierResult out;
    switch (parts[0].as_int()) {
      case 1:
        out.status = TierResult::Status::Done;
        out.count = parts.size() > 1 && parts[1].is_integer() ? parts[1].as_int() : 0;
        memory_.erase(entry, hash);  // what this instance holds is the old value
        break;
      case 2:
        out.status = TierResult::Status::Conflict;
        out.error = parts.size() > 1 && parts[1].is_bulk() ? parts[1].str() : std::string();
        break;
      case 4:
        out.status = TierResult::Status::Conflict;
        out.count = 1;  // an integer, but the sum is beyond what a counter holds
        break;
      default:
        // Stored in a form the script cannot read (signed by another instance, or
        // compressed): the caller compare-and-sets.
        out.status = TierResult::Status::Conflict;
        out.count = 2;
    }
    cb(std::move(out));
  });
}

void RedisTier::wait_fill(const Key& key, Nanos timeout_ns, Callback cb) {
  fill_waiters_.add(key.str, clock_->monotonic_ns(), timeout_ns, std::move(cb));
}

void RedisTier::claim(const std::string& name, const std::string& token, std::int64_t ttl_ms, Callback cb) {
  client_->submit({"SET", fmt::format("{}#c:{}", ns_, name), token, "NX", "PX", std::to_string(std::max<std::int64_t>(ttl_ms, 1))},
                  [cb = std::move(cb)](RedisResult result) {
                    TierResult out;
                    if (!result.ok() || result.reply().is_error()) {
                      cb(TierResult::fault(describe(result)));
                      return;
                    }
                    out.status = TierResult::Status::Done;
                    out.count = result.reply().is_nil() ? 0 : 1;
                    cb(std::move(out));
                  });
}

void RedisTier::release(const Key& key, const std::string& lease_token, Callback cb) {
  eval(*release_, {lease_key(key.str), waiters_key(key.str)}, {lease_token, fill_channel_, key.str},
       [cb = std::move(cb)](RedisResult result) {
         TierResult out;
         out.status = result.ok() && result.reply().is_integer() ? TierResult::Status::Done
                                                                 : TierResult::Status::Fault;
         out.count = result.ok() && result.reply().is_integer() ? result.reply().as_int() : 0;
         if (out.status == TierResult::Status::Fault) out.error = describe(result);
         cb(std::move(out));
       });
}

void RedisTier::invalidate(const Invalidation& inv, Callback cb) {
  std::string message = encode_invalidation(inv);
  // Built only by the branches that finish with one script call (the others need cb).
  auto finish = [&] {
    return [this, inv, cb = std::move(cb)](RedisResult result) mutable {
    if (!result.ok() || !result.reply().is_integer()) {
      journal_.record(inv);
      cb(TierResult::fault(describe(result)));
      return;
    }
    TierResult out;
    out.status = TierResult::Status::Done;
    out.count = result.reply().as_int();
    cb(std::move(out));
    };
  };
  switch (inv.kind) {
    case Invalidation::Kind::Key:
    {
      std::vector<std::string> bumped = bumped_version_keys(inv);  // the key's dependency version
      versions_.forget(bumped);
      eval(*delete_, {inv.targets[0], lease_key(inv.targets[0]), bumped[0]},
           {channel_, message, std::to_string(kKeyVersionKeepMs)}, finish());
      return;
    }
    case Invalidation::Kind::Prefix:
    case Invalidation::Kind::Tags: {
      // Forgotten before the bump is sent: a read sent after it sees the new version.
      std::vector<std::string> keys = bumped_version_keys(inv);
      versions_.forget(keys);
      eval(*bump_, std::move(keys), {channel_, message}, finish());
      return;
    }
    case Invalidation::Kind::Pattern: {
      // glob_match accepts [!x] for negation; Redis' MATCH only knows [^x].
      std::string pattern = inv.targets[0];
      for (std::size_t i = 0; i + 1 < pattern.size(); ++i) {
        if (pattern[i] == '\\') ++i;
        else if (pattern[i] == '[' && pattern[i + 1] == '!') pattern[i + 1] = '^';
      }
      scan_unlink(glob_escape(ns_) + ":" + pattern, "0", 0, inv, std::move(cb));
      return;
    }
    case Invalidation::Kind::Clear:
      scan_unlink(glob_escape(ns_) + ":*", "0", 0, inv, std::move(cb));
      return;
  }
}

// SCAN + UNLINK, one batch per round trip, so no single command runs long.
void RedisTier::scan_unlink(std::string match, std::string cursor, std::int64_t removed,
                            Invalidation inv, Callback cb) {
  client_->submit(
      {"SCAN", cursor, "MATCH", match, "COUNT", std::to_string(kScanCount)},
      [this, match, removed, inv = std::move(inv), cb = std::move(cb)](RedisResult result) mutable {
        if (!result.ok() || !result.reply().is_array() || result.reply().elements().size() != 2) {
          journal_.record(inv);
          cb(TierResult::fault(describe(result)));
          return;
        }
        auto& e = result.reply().elements();
        std::string next = e[0].str();
        std::vector<std::string> keys;
        for (auto& k : e[1].elements()) keys.push_back(std::move(k.str()));
        auto step = [this, match, next, removed, inv = std::move(inv), cb = std::move(cb)](std::int64_t n) mutable {
          if (next == "0") {
            // Bumping the generation revokes every lease in the namespace: a load that
            // began before this invalidation cannot write its result after it.
            std::int64_t total = removed + n;
            eval(*bump_, {generation_key_}, {channel_, encode_invalidation(inv)},
                 [total, cb = std::move(cb)](RedisResult r) {
                   TierResult out;
                   out.status = TierResult::Status::Done;
                   out.count = total;
                   if (!r.ok() || r.reply().is_error()) out.error = describe(r);
                   cb(std::move(out));
                 });
          } else {
            scan_unlink(match, next, removed + n, std::move(inv), std::move(cb));
          }
        };
        if (keys.empty()) {
          step(0);
          return;
        }
        auto answered = [step = std::move(step)](RedisResult r) mutable {
          step(r.ok() && r.reply().is_integer() ? r.reply().as_int() : 0);
        };
        if (inv.kind == Invalidation::Kind::Clear) {  // everything goes: nothing to bump
          keys.insert(keys.begin(), "UNLINK");
          client_->submit(std::move(keys), [this, answered = std::move(answered)](RedisResult r) mutable {
            note_write(r);  // a script's outcome is noted by eval()
            answered(std::move(r));
          });
          return;
        }
        // A pattern removes keys entries may have been built from: their dependency
        // versions move in the same step, and the instances that know them forget them.
        std::vector<std::string> tags;
        tags.reserve(keys.size());
        for (const auto& k : keys) tags.push_back(fmt::format("{}{}", kKeyDependency, k));
        Invalidation dependents = Invalidation::tags(instance_id_, tags);
        std::vector<std::string> versions = bumped_version_keys(dependents);
        versions_.forget(versions);
        keys.insert(keys.end(), std::make_move_iterator(versions.begin()), std::make_move_iterator(versions.end()));
        eval(*unlink_batch_, std::move(keys), {channel_, encode_invalidation(dependents)}, std::move(answered));
      });
}

std::vector<std::string> RedisTier::bumped_version_keys(const Invalidation& inv) const {
  std::vector<std::string> keys;
  if (inv.kind == Invalidation::Kind::Key) {
    keys.push_back(tag_version_key(ns_, fmt::format("{}{}", kKeyDependency, inv.targets[0])));
  }
  if (inv.kind == Invalidation::Kind::Prefix) keys.push_back(prefix_version_key(ns_, inv.targets[1]));
  if (inv.kind == Invalidation::Kind::Tags) {
    for (const auto& tag : inv.targets) keys.push_back(tag_version_key(ns_, tag));
  }
  return keys;
}

void RedisTier::replay_journal() {
  std::deque<Invalidation> pending = journal_.take(instance_id_);
  if (!pending.empty() && log_) {
    log_(kLogWarning, fmt::format("replaying {} invalidation(s) made while Redis was unreachable", pending.size()));
  }
  for (auto& inv : pending) invalidate(inv, [](TierResult) {});
}

void RedisTier::on_message(const std::string& channel, const std::string& payload) {
  if (channel == fill_channel_) {
    auto notice = codec_.fill_notice(payload);
    if (!notice) {
      messages_malformed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (notice->forged) note_forged(notice->key);
    fill_waiters_.wake(notice->key, notice->filled);
    return;
  }
  auto inv = decode_invalidation(payload);
  if (!inv) {
    messages_malformed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Ours were applied locally when made, and their versions forgotten before they were
  // sent (a read sent after that is answered after the bump: one connection, in order).
  // Forgetting them again on arrival would only stop reads in flight learning versions:
  // every write's announcement names its key's dependency version.
  if (inv->origin == instance_id_) return;
  versions_.forget(bumped_version_keys(*inv));
  inv->apply(memory_);
  messages_received_.fetch_add(1, std::memory_order_relaxed);
}

void RedisTier::on_subscriber_event(const ConnectionEvent& event) {
  // Broadcasts may be missed from the moment the channel drops: no known version is
  // trusted past it (and plain reads stop until it is back).
  if (!event.connected) versions_.clear();
  subscriber_connected_.store(event.connected, std::memory_order_release);
  if (event.connected) {
    versions_.clear();
    bool reconnect = subscriber_seen_.exchange(true) || event.after_loss;
    if (reconnect) {
      std::size_t dropped = memory_.clear();
      memory_flushes_.fetch_add(1, std::memory_order_relaxed);
      if (log_) {
        log_(kLogWarning, fmt::format("invalidation channel reconnected: flushed the memory tier ({} entries) "
                             "because invalidations may have been missed", dropped));
      }
    }
  }
  update_memory_trust();
}

// The subscriber-loss rule (Redis' client-side caching rule): while Redis answers but
// the invalidation channel is down, another instance's invalidation may be missed, so
// the memory tier serves and keeps nothing (reads go to Redis). When the channel is back
// the tier has already been flushed (on_subscriber_event) and serves again. While Redis
// is unreachable altogether nobody invalidates through it, and the memory tier is the
// whole cache, as for any outage: what it held is served again.
void RedisTier::update_memory_trust() {
  std::lock_guard lock(trust_mutex_);
  const bool trusted = subscriber_connected_.load() || !client_connected_.load();
  if (trusted != memory_.suspended()) return;
  if (trusted) {
    memory_.resume();
    if (log_) log_(kLogInfo, "memory tier served again");
    return;
  }
  memory_.suspend();
  if (!subscriber_seen_.load()) {  // starting: the channel is not up yet
    if (log_) log_(kLogInfo, "the memory tier is served once the invalidation channel is up");
    return;
  }
  memory_suspensions_.fetch_add(1, std::memory_order_relaxed);
  if (log_) log_(kLogWarning, "invalidation channel lost while redis answers: the memory tier is not served until it is back");
}

void RedisTier::on_client_event(const ConnectionEvent& event) {
  client_connected_.store(event.connected);
  update_memory_trust();
  versions_.clear();  // a restarted or failed-over server may hold other versions
  if (log_) {
    log_(event.connected ? kLogInfo : kLogWarning, event.connected ? fmt::format("redis connected: {}", event.detail)
                                                    : fmt::format("redis unavailable: {}", event.detail));
  }
  if (event.connected) {
    connected_once_.store(true);
    if (started_.load()) on_connected();
  }
}

void RedisTier::on_connected() {
  for (const Script* s : {read_.get(), write_.get(), bump_.get(), delete_.get(), release_.get(), incr_.get(),
                          unlink_batch_.get()}) {
    client_->submit({"SCRIPT", "LOAD", std::string(s->source)}, [s](RedisResult r) {
      if (r.ok() && r.reply().is_bulk()) s->set_sha(r.reply().str());
    });
  }
  replay_journal();
}

// A write's final outcome, for the writes-failing rule (reply_errors.hpp), logged when
// the state changes.
void RedisTier::note_write(const RedisResult& result) {
  if (!result.ok()) return;  // a fault: the connection state reports it
  const bool refused = result.reply().is_error();
  const auto change = refused ? write_health_.on_error_reply(result.reply().str()) : write_health_.on_success();
  if (!log_ || change == WriteHealth::Change::None) return;
  if (change == WriteHealth::Change::Failing) {
    const ReplyError kind = classify_reply_error(result.reply().str());
    const bool cluster_node = kind == ReplyError::CrossSlot || kind == ReplyError::Moved;
    log_(kLogWarning, fmt::format("redis writes failing: {} writes in a row were answered with an error, the "
                                  "latest: {} (nothing is shared through redis until a write succeeds){}",
                                  WriteHealth::kFailingAfter, result.reply().str(),
                                  cluster_node ? "; the server is a Redis Cluster node, which a redis:// url "
                                                 "cannot use: the url for a cluster is redis+cluster://"
                                               : ""));
  } else {
    log_(kLogInfo, "redis writes succeed again");
  }
}

void RedisTier::probe_writes() {
  if (!write_health_.failing()) return;
  const Nanos now = clock_->monotonic_ns();
  Nanos last = last_probe_ns_.load();
  if (last != 0 && now - last < kWriteProbeNs) return;
  if (!last_probe_ns_.compare_exchange_strong(last, now)) return;  // another thread probes
  // The bump script INCRs (refused by a replica, at maxmemory, ...) and publishes on a
  // channel nobody listens to; its outcome feeds the rule like any write's.
  eval(*bump_, {ns_ + "#probe"}, {channel_ + ":probe", std::string()}, [](RedisResult) {});
}

RedisHealth RedisTier::health() const { return client_->health(); }

TierStats RedisTier::stats() const {
  TierStats s;
  s.messages_received = messages_received_.load();
  s.messages_malformed = messages_malformed_.load();
  s.memory_flushes = memory_flushes_.load();
  s.writes_refused = writes_refused_.load();
  s.journal_overflows = journal_.overflows();
  s.reads_plain = reads_plain_.load();
  s.reads_scripted = reads_scripted_.load();
  s.entries_forged = forged_.load();
  s.versions_known = versions_.size();
  s.subscriber_connected = subscriber_connected_.load();
  s.memory_suspended = memory_.suspended();
  s.memory_suspensions = memory_suspensions_.load();
  s.journal_pending = journal_.pending();
  s.scripts_reloaded = scripts_reloaded_.load();
  WriteHealth::Snapshot w = write_health_.snapshot();
  s.writes_failing = w.failing;
  s.write_errors_in_a_row = static_cast<std::uint64_t>(w.errors_in_a_row);
  s.writes_failing_episodes = w.episodes;
  s.last_write_error = std::move(w.last_error);
  return s;
}

}  // namespace herdcache
