// Canonical key encoding; the format is specified in keys.hpp.
//
// The builder appends tokens to one buffer as they arrive and records where each container
// item and each keyword parameter starts, so that dict items and parameters can be sorted in
// place when their container (or the key) is finished. Two facts keep the offsets simple:
//   - ':' only ever appears as the top-level separator (strings escape it, ns/resource may
//     not contain it), so a parameter ":name=value" ends at the next ':' or the end;
//   - '=' never ends a token (strings escape it), so a trailing '=' at top level is a
//     parameter still waiting for its value.
#include "herdcache/keys.hpp"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";
constexpr char kHexLower[] = "0123456789abcdef";

// Bytes written as %XX inside strings: the key syntax, the glob syntax, and controls/space.
constexpr bool escaped_byte(unsigned char c) noexcept {
  switch (c) {
    case '%': case ':': case ',': case '=': case '[': case ']': case '{': case '}':
    case '*': case '?': case '#': case '\\': case '\'':
      return true;
    default:
      return c <= 0x20 || c == 0x7f;
  }
}

// The same as a table: strings are escaped on every decorated call, byte by byte.
struct EscapeTable {
  bool escape[256];
  constexpr EscapeTable() : escape() {
    for (int c = 0; c < 256; ++c) escape[c] = escaped_byte(static_cast<unsigned char>(c));
  }
};
constexpr EscapeTable kEscape;

bool needs_escape(unsigned char c) noexcept { return kEscape.escape[c]; }

bool is_decimal_int(std::string_view s) noexcept {
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return !s.empty() && std::all_of(s.begin(), s.end(), digit);
}

// A namespace or resource name is written into keys as it is, so it must not contain
// what the key syntax, the glob syntax or the internal keys use: ':' separates a key's
// parts, '#' starts every internal key ("<ns>#t:<tag>", "<ns>#l:<key>", ...: namespace
// "a#t" would otherwise write namespace "a"'s version key of a tag), '{' '}' are Redis
// Cluster hash tags, the glob characters would make patterns ambiguous, and spaces and
// control bytes make keys unreadable in every tool.
void validate_name(std::string_view value, std::string_view what) {
  if (value.empty()) throw InvalidArgument(fmt::format("key {} must not be empty", what));
  for (unsigned char c : value) {
    if (!needs_escape(c) || c == '\'' ) continue;
    if (c <= 0x20 || c == 0x7f) {
      throw InvalidArgument(fmt::format("key {} must not contain spaces or control characters, got {:?}",
                                        what, std::string(value)));
    }
    throw InvalidArgument(fmt::format("key {} must not contain '{}' (reserved by the key format), got '{}'", what,
                                      static_cast<char>(c), value));
  }
}

// At top level (no container open): see the file comment, a trailing '=' is a parameter
// waiting for its value.
bool param_pending(const std::string& buf, const std::vector<std::size_t>& params) noexcept {
  return !params.empty() && !buf.empty() && buf.back() == '=';
}

}  // namespace

std::uint64_t hash_bytes(std::string_view bytes) noexcept {
  return XXH3_64bits(bytes.data(), bytes.size());
}

void KeyBuilder::reset(std::string_view ns, std::string_view resource) {
  validate_name(ns, "namespace");
  validate_name(resource, "resource");
  buf_.clear();  // keeps capacity
  buf_.append(ns).append(1, ':').append(resource);
  restart_at(ns.size() + 1);
}

void KeyBuilder::restart(std::string_view prefix) {
  // Trusted: reset() validated these names when the prefix was first written.
  buf_.assign(prefix);
  restart_at(prefix.find(':') + 1);
}

void KeyBuilder::restart_at(std::size_t resource_begin) {
  resource_begin_ = resource_begin;
  shortened_.clear();
  args_begin_ = buf_.size();
  finished_ = false;
  frames_.clear();
  params_.clear();
}

// Called before every token: checks the builder is open and writes what goes in front of
// the token (':' at top level, ',' between items), recording where the item starts.
void KeyBuilder::separator() {
  if (buf_.empty()) throw InvalidArgument("KeyBuilder: call reset() before adding tokens");
  if (finished_) throw InvalidArgument("KeyBuilder: key already finished; call reset()");
  if (frames_.empty()) {
    if (param_pending(buf_, params_)) return;  // the value after "name="
    if (!params_.empty())
      throw InvalidArgument("a positional argument cannot follow a keyword parameter");
    buf_ += ':';
    return;
  }
  Frame& frame = frames_.back();
  if (!frame.dict) {
    if (!frame.items.empty()) buf_ += ',';
    frame.items.push_back(buf_.size());
    return;
  }
  // Dict items are [key0, value0, key1, value1, ...] start offsets; every token writes at
  // least one byte, so "nothing written since the last offset" means a value is due.
  if (frame.items.size() % 2 == 1)
    throw InvalidArgument("dict item has two keys: call dict_value() between key and value");
  if (!frame.items.empty() && buf_.size() == frame.items.back()) return;  // the value
  if (!frame.items.empty()) buf_ += ',';
  frame.items.push_back(buf_.size());
}

void KeyBuilder::add_none() {
  separator();
  buf_ += '~';
}

void KeyBuilder::add_bool(bool value) {
  separator();
  buf_ += value ? "!t" : "!f";
}

void KeyBuilder::add_int(std::int64_t value) {
  separator();
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  buf_.append(digits, end);
}

void KeyBuilder::add_int_decimal(std::string_view digits) {
  // Only the form Python prints: no '+', no leading zeros, no "-0". Anything else would
  // give the same number a second key.
  std::string_view magnitude = digits.substr(digits.starts_with('-') ? 1 : 0);
  bool canonical = is_decimal_int(digits) && !(magnitude.size() > 1 && magnitude[0] == '0') &&
                   digits != "-0";
  if (!canonical)
    throw InvalidArgument(fmt::format("not a canonical decimal integer: '{}'", digits));
  separator();
  buf_.append(digits);
}

void KeyBuilder::add_float(double value) {
  separator();
  buf_ += '^';
  if (std::isnan(value)) {
    buf_ += "nan";  // every NaN (any sign or payload) is one key
  } else {
    fmt::format_to(std::back_inserter(buf_), "{}", value);  // shortest round-trip; inf, -inf
  }
}

void KeyBuilder::add_str(std::string_view utf8) {
  separator();
  // Escaping never touches the first byte of these cases, so test the raw text.
  bool quote = utf8.empty() || is_decimal_int(utf8) || utf8[0] == '~' || utf8[0] == '!' ||
               utf8[0] == '^';
  if (quote) buf_ += '\'';
  append_escaped(utf8);
}

void KeyBuilder::append_escaped(std::string_view utf8) {
  // Runs of plain bytes are appended whole; only escaped bytes go one at a time.
  std::size_t run = 0;
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (!needs_escape(c)) continue;
    buf_.append(utf8.data() + run, i - run);
    const char escaped[3] = {'%', kHex[c >> 4], kHex[c & 0xf]};
    buf_.append(escaped, 3);
    run = i + 1;
  }
  buf_.append(utf8.data() + run, utf8.size() - run);
}

void KeyBuilder::add_bytes(std::string_view bytes) {
  separator();
  buf_ += "!x";
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    buf_ += kHexLower[c >> 4];
    buf_ += kHexLower[c & 0xf];
  }
}

void KeyBuilder::begin_list() {
  separator();
  frames_.push_back(Frame{buf_.size(), {}, false});
  buf_ += '[';
}

void KeyBuilder::end_list() {
  if (frames_.empty() || frames_.back().dict)
    throw InvalidArgument("end_list() without begin_list()");
  frames_.pop_back();
  buf_ += ']';
}

void KeyBuilder::begin_dict() {
  separator();
  frames_.push_back(Frame{buf_.size(), {}, true});
  buf_ += '{';
}

void KeyBuilder::dict_value() {
  if (frames_.empty() || !frames_.back().dict || finished_)
    throw InvalidArgument("dict_value() outside a dict");
  Frame& frame = frames_.back();
  if (frame.items.size() % 2 == 0) throw InvalidArgument("dict_value() without a key before it");
  buf_ += '=';
  frame.items.push_back(buf_.size());
}

void KeyBuilder::end_dict() {
  if (frames_.empty() || !frames_.back().dict || finished_)
    throw InvalidArgument("end_dict() without begin_dict()");
  const Frame& frame = frames_.back();
  const std::vector<std::size_t>& items = frame.items;
  if (items.size() % 2 == 1 || (!items.empty() && buf_.size() == items.back()))
    throw InvalidArgument("dict item without a value");

  // Sort the "key=value" items by their bytes, so insertion order does not matter. A nested
  // dict was sorted when it closed, so comparing encoded items is enough.
  std::vector<std::string_view> sorted;
  sorted.reserve(items.size() / 2);
  std::string_view buf = buf_;
  for (std::size_t i = 0; i < items.size(); i += 2) {
    std::size_t end = i + 2 < items.size() ? items[i + 2] - 1 : buf.size();  // -1: the ','
    sorted.push_back(buf.substr(items[i], end - items[i]));
  }
  std::sort(sorted.begin(), sorted.end());
  std::string& body = shortened_;  // scratch until finish() writes the shortened form
  body.clear();
  for (std::string_view item : sorted) {
    if (!body.empty()) body += ',';
    body.append(item);
  }
  buf_.replace(frame.begin + 1, std::string::npos, body);  // after the '{'
  body.clear();
  buf_ += '}';
  frames_.pop_back();
}

void KeyBuilder::begin_param(std::string_view name) {
  if (buf_.empty() || finished_)
    throw InvalidArgument("KeyBuilder: call reset() before adding tokens");
  if (!frames_.empty()) throw InvalidArgument("begin_param() inside a list or dict");
  if (param_pending(buf_, params_))
    throw InvalidArgument("keyword parameter without a value");
  if (name.empty()) throw InvalidArgument("keyword parameter name must not be empty");
  params_.push_back(buf_.size());
  buf_ += ':';
  append_escaped(name);
  buf_ += '=';
}

// Sorts the ":name=value" parameters by name, in place. Uses shortened_ as scratch space
// (it is rewritten after this anyway), so a warmed-up builder does not allocate here.
void KeyBuilder::sort_params() {
  if (params_.size() < 2) return;
  std::string_view buf = buf_;
  auto segment = [buf](std::size_t begin) {
    std::size_t end = buf.find(':', begin + 1);
    return buf.substr(begin, (end == std::string_view::npos ? buf.size() : end) - begin);
  };
  auto name = [segment](std::size_t begin) {
    std::string_view s = segment(begin);
    return s.substr(1, s.find('=') - 1);  // names escape '=', so the first one ends the name
  };
  const std::size_t first = params_.front();
  std::sort(params_.begin(), params_.end(),
            [&](std::size_t a, std::size_t b) { return name(a) < name(b); });
  for (std::size_t i = 1; i < params_.size(); ++i) {
    if (name(params_[i - 1]) == name(params_[i]))
      throw InvalidArgument(fmt::format("keyword parameter '{}' given twice", name(params_[i])));
  }
  shortened_.clear();
  for (std::size_t begin : params_) shortened_.append(segment(begin));
  buf_.replace(first, std::string::npos, shortened_);
  shortened_.clear();
  // params_ now points into the old layout; that is fine because the key is finished.
}

KeyBuilder::View KeyBuilder::finish_view() {
  if (!finished_) {
    if (buf_.empty()) throw InvalidArgument("KeyBuilder: call reset() before finish()");
    if (!frames_.empty())
      throw InvalidArgument(frames_.back().dict ? "key has an unclosed dict: call end_dict()"
                                                : "key has an unclosed list: call end_list()");
    if (param_pending(buf_, params_))
      throw InvalidArgument("keyword parameter without a value");
    sort_params();
    finished_ = true;
    if (buf_.size() > kMaxKeyBytes) {
      // Readable prefix + "#" + 32 hex digits of the xxh3-128 of the whole canonical form.
      constexpr std::size_t kSuffixBytes = 1 + 32;
      std::size_t cut = kMaxKeyBytes - kSuffixBytes;
      while (cut > 0 && (static_cast<unsigned char>(buf_[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
      XXH128_hash_t digest = XXH3_128bits(buf_.data(), buf_.size());
      shortened_.assign(buf_, 0, cut);
      fmt::format_to(std::back_inserter(shortened_), "#{:016x}{:016x}", digest.high64,
                     digest.low64);
    }
  }
  std::string_view str = buf_.size() > kMaxKeyBytes ? std::string_view(shortened_) : buf_;
  return View{str, hash_bytes(str)};
}

Key KeyBuilder::finish() {
  View view = finish_view();
  Key key;
  key.str.assign(view.str);
  if (buf_.size() > kMaxKeyBytes) key.full = buf_;
  key.resource.assign(buf_, resource_begin_, args_begin_ - resource_begin_);
  key.hash = view.hash;
  key.args_begin = args_begin_;
  return key;
}

bool key_has_prefix(std::string_view canonical, std::string_view prefix) noexcept {
  if (!canonical.starts_with(prefix)) return false;
  return canonical.size() == prefix.size() || canonical[prefix.size()] == ':';
}

namespace {

// Matches one pattern element (everything except '*') at pattern[p] against `c`. Sets
// `next` to the index after the element. Follows Redis' stringmatchlen (util.c), including
// its quirks: an unterminated '[' runs to the end of the pattern, "[]" is an empty class.
// Negation is written [^x] in Redis; [!x] (shell style) is accepted too.
bool match_one(std::string_view pattern, std::size_t p, unsigned char c, std::size_t& next) {
  const std::size_t n = pattern.size();
  switch (pattern[p]) {
    case '?':
      next = p + 1;
      return true;
    case '[': {
      std::size_t i = p + 1;
      bool negate = i < n && (pattern[i] == '^' || pattern[i] == '!');
      if (negate) ++i;
      bool match = false;
      while (i < n && pattern[i] != ']') {
        auto at = [&](std::size_t k) { return static_cast<unsigned char>(pattern[k]); };
        if (pattern[i] == '\\' && i + 1 < n) {
          match |= at(i + 1) == c;
          i += 2;
        } else if (i + 2 < n && pattern[i + 1] == '-') {
          unsigned char lo = std::min(at(i), at(i + 2));
          unsigned char hi = std::max(at(i), at(i + 2));
          match |= c >= lo && c <= hi;
          i += 3;
        } else {
          match |= at(i) == c;
          i += 1;
        }
      }
      next = i < n ? i + 1 : n;  // past the ']'
      return match != negate;
    }
    case '\\':
      if (p + 1 < n) {
        next = p + 2;
        return static_cast<unsigned char>(pattern[p + 1]) == c;
      }
      [[fallthrough]];  // a trailing '\' is a literal
    default:
      next = p + 1;
      return static_cast<unsigned char>(pattern[p]) == c;
  }
}

}  // namespace

// Iterative glob: on a mismatch, go back to the last '*' and let it swallow one more byte.
// Every element other than '*' matches exactly one byte, so remembering only the last '*'
// is enough, and the worst case is O(pattern * text) with no recursion.
bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  constexpr std::size_t kNone = std::string_view::npos;
  std::size_t p = 0, t = 0;
  std::size_t star_p = kNone, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      if (p == pattern.size()) return true;
      star_p = p;
      star_t = t;
      continue;
    }
    std::size_t next = p;
    if (p < pattern.size() && match_one(pattern, p, static_cast<unsigned char>(text[t]), next)) {
      p = next;
      ++t;
      continue;
    }
    if (star_p == kNone) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace herdcache
