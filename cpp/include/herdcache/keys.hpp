// Canonical cache keys.
//
// A key is "<namespace>:<resource>" followed by one ":<token>" per positional argument and
// then one ":<name>=<token>" per keyword parameter, parameters sorted by name. The same
// call gives the same bytes in every process and release, and different calls give
// different bytes. Tokens:
//
//   None ~        True !t       False !f      int 42 / -7 (any size, decimal)
//   float ^1.5 (shortest round-trip form; ^nan ^inf ^-inf)
//   str   the UTF-8 text with % : , = [ ] { } * ? # \ ' and bytes <= 0x20 or 0x7f written
//         as %XX; a string that is empty, looks like an int, or starts with ~ ! ^ gets a
//         leading '  (so "42" is '42 and never collides with the int 42)
//   bytes !x<hex>
//   list / tuple [a,b]   (both are sequences: (1, 2) and [1, 2] share a key)
//   dict  {k=v,k2=v2}   items sorted by their encoded bytes
//
// Keys longer than kMaxKeyBytes keep a readable prefix and end in "#" + the hex xxh3-128
// of the whole canonical form; `full` then keeps the canonical form for prefix matching.
// The encoder does no I/O and is tested with byte strings.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace herdcache {

inline constexpr std::size_t kMaxKeyBytes = 250;

std::uint64_t hash_bytes(std::string_view bytes) noexcept;  // xxh3-64

struct Key {
  std::string str;        // the key as stored (Redis key); <= kMaxKeyBytes
  std::string full;       // canonical form when `str` was shortened, else empty
  std::string resource;   // the resource name
  std::uint64_t hash = 0; // hash_bytes(str)
  std::size_t args_begin = 0;  // offset in canonical() where ":<first token>" starts

  std::string_view canonical() const noexcept { return full.empty() ? str : full; }
  bool operator==(const Key& other) const noexcept { return str == other.str; }
};

// Builds one key. Reusable: reset() keeps the buffer's capacity, so a thread-local builder
// makes the hot path allocation-free.
class KeyBuilder {
 public:
  KeyBuilder() = default;
  // Throws InvalidArgument when namespace or resource is empty or contains ':'.
  void reset(std::string_view ns, std::string_view resource);
  // Starts again from "<namespace>:<resource>" exactly as a previous reset() wrote it (what
  // a decorated function's call site keeps): the same key, without revalidating the names
  // on every call. Precondition: `prefix` came from canonical() right after reset().
  void restart(std::string_view prefix);

  void add_none();
  void add_bool(bool value);
  void add_int(std::int64_t value);
  void add_int_decimal(std::string_view digits);  // big ints: "-123..." as Python prints them
  void add_float(double value);
  void add_str(std::string_view utf8);
  void add_bytes(std::string_view bytes);
  void begin_list();
  void end_list();
  void begin_dict();
  void dict_value();  // between an item's key and its value
  void end_dict();
  void begin_param(std::string_view name);  // a keyword parameter; its value follows

  // The finished key. finish_view() is valid until the next reset(); it returns the stored
  // form (shortened when long) and its hash, without allocating when the key is short.
  struct View {
    std::string_view str;
    std::uint64_t hash;
  };
  View finish_view();
  Key finish();

  // The canonical form written so far (for tests and prefix matching).
  std::string_view canonical() const noexcept { return buf_; }

 private:
  void separator();
  void append_escaped(std::string_view utf8);
  void sort_params();
  void restart_at(std::size_t resource_begin);

  std::string buf_;
  std::size_t resource_begin_ = 0;  // where the resource name starts in buf_
  std::string shortened_;
  std::size_t args_begin_ = 0;
  bool finished_ = false;
  // Open containers: for each, where it started and where each of its items starts.
  struct Frame {
    std::size_t begin;
    std::vector<std::size_t> items;
    bool dict;
  };
  std::vector<Frame> frames_;
  std::vector<std::size_t> params_;  // start offsets of ":name=value" param tokens
};

// True when `canonical` is `prefix` or starts with `prefix` followed by ':'.
bool key_has_prefix(std::string_view canonical, std::string_view prefix) noexcept;

// Glob match (*, ?, [abc], [a-z], [!x], \ escapes) as Redis MATCH does it.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace herdcache
