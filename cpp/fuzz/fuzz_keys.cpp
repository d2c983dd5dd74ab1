// Key encoding and glob matching from arbitrary bytes. Keys: any sequence of builder
// calls either throws InvalidArgument or gives a key that is no longer than kMaxKeyBytes,
// holds no space or control byte, starts with its "<ns>:<resource>" prefix and is the
// same when built again; distinct strings (and a string and the int or bytes it spells)
// never share a key. Glob: glob_match agrees with a plain dynamic-programming matcher
// over the same elements (Redis' stringmatchlen rules), and matches every text against
// "*" and against the text with every special byte escaped.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/keys.hpp"

using namespace herdcache;

namespace {

struct Op {
  int code;
  std::int64_t number;
  double real;
  std::string text;
};

void apply(KeyBuilder& b, const Op& op) {
  switch (op.code) {
    case 0: b.add_none(); break;
    case 1: b.add_bool(op.number & 1); break;
    case 2: b.add_int(op.number); break;
    case 3: b.add_int_decimal(op.text); break;
    case 4: b.add_float(op.real); break;
    case 5: b.add_str(op.text); break;
    case 6: b.add_bytes(op.text); break;
    case 7: b.begin_list(); break;
    case 8: b.end_list(); break;
    case 9: b.begin_dict(); break;
    case 10: b.dict_value(); break;
    case 11: b.end_dict(); break;
    default: b.begin_param(op.text); break;
  }
}

// Applies the ops (a refused one leaves the builder as it was) and finishes the key.
std::optional<Key> build(std::string_view ns, std::string_view res, const std::vector<Op>& ops) {
  KeyBuilder b;
  b.reset(ns, res);
  for (const Op& op : ops) {
    try {
      apply(b, op);
    } catch (const InvalidArgument&) {
    }
  }
  try {
    return b.finish();
  } catch (const InvalidArgument&) {
    return std::nullopt;
  }
}

std::string one(std::string_view ns, std::string_view res, int code, std::string_view text, std::int64_t n = 0) {
  KeyBuilder b;
  b.reset(ns, res);
  apply(b, Op{code, n, 0.0, std::string(text)});
  return std::string(b.finish().canonical());
}

// The reference matcher: the pattern as elements (a '*', or the set of bytes one
// position accepts), then the textbook DP over (element, text position).
struct Element {
  bool star = false;
  std::array<bool, 256> accepts{};
};

std::vector<Element> elements(std::string_view p) {
  std::vector<Element> out;
  for (std::size_t i = 0; i < p.size();) {
    Element e;
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(p[k]); };
    if (p[i] == '*') {
      e.star = true;
      ++i;
    } else if (p[i] == '?') {
      e.accepts.fill(true);
      ++i;
    } else if (p[i] == '[') {
      std::size_t j = i + 1;
      bool negate = j < p.size() && (p[j] == '^' || p[j] == '!');
      if (negate) ++j;
      std::array<bool, 256> set{};
      while (j < p.size() && p[j] != ']') {
        if (p[j] == '\\' && j + 1 < p.size()) {
          set[at(j + 1)] = true;
          j += 2;
        } else if (j + 2 < p.size() && p[j + 1] == '-') {
          for (int c = std::min(at(j), at(j + 2)); c <= std::max(at(j), at(j + 2)); ++c) set[c] = true;
          j += 3;
        } else {
          set[at(j)] = true;
          ++j;
        }
      }
      for (int c = 0; c < 256; ++c) e.accepts[c] = set[c] != negate;
      i = j < p.size() ? j + 1 : p.size();
    } else if (p[i] == '\\' && i + 1 < p.size()) {
      e.accepts[at(i + 1)] = true;
      i += 2;
    } else {
      e.accepts[at(i)] = true;
      ++i;
    }
    out.push_back(e);
  }
  return out;
}

bool reference_match(std::string_view pattern, std::string_view text) {
  const auto els = elements(pattern);
  // can[i][j]: elements i.. match text j..
  std::vector<std::vector<char>> can(els.size() + 1, std::vector<char>(text.size() + 1, 0));
  can[els.size()][text.size()] = 1;
  for (std::size_t i = els.size(); i-- > 0;) {
    for (std::size_t j = text.size() + 1; j-- > 0;) {
      if (els[i].star) {
        can[i][j] = can[i + 1][j] || (j < text.size() && can[i][j + 1]);
      } else {
        can[i][j] = j < text.size() && els[i].accepts[static_cast<unsigned char>(text[j])] && can[i + 1][j + 1];
      }
    }
  }
  return can[0][0];
}

std::string escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const int part = in.ConsumeIntegralInRange(0, 2);
  if (part == 0) {  // a key from a sequence of builder calls
    std::string ns = in.ConsumeRandomLengthString(12), res = in.ConsumeRandomLengthString(12);
    try {
      KeyBuilder().reset(ns, res);
    } catch (const InvalidArgument&) {
      ns = "ns", res = "res";
    }
    std::vector<Op> ops;
    while (in.remaining_bytes() && ops.size() < 64) {
      Op op{in.ConsumeIntegralInRange(0, 12), in.ConsumeIntegral<std::int64_t>(), in.ConsumeFloatingPoint<double>(),
            in.ConsumeRandomLengthString(40)};
      ops.push_back(std::move(op));
    }
    auto key = build(ns, res, ops);
    if (!key) return 0;
    FUZZ_CHECK(key->str.size() <= kMaxKeyBytes);
    FUZZ_CHECK(key->hash == hash_bytes(key->str));
    FUZZ_CHECK(key->resource == res);
    FUZZ_CHECK(key_has_prefix(key->canonical(), ns + ":" + res));
    for (unsigned char c : key->canonical()) FUZZ_CHECK(c > 0x20 && c != 0x7f);
    auto again = build(ns, res, ops);
    FUZZ_CHECK(again && again->str == key->str && again->full == key->full);
  } else if (part == 1) {  // distinct values, distinct keys
    const std::string a = in.ConsumeRandomLengthString(64), b = in.ConsumeRandomLengthString(64);
    FUZZ_CHECK((one("n", "r", 5, a) == one("n", "r", 5, b)) == (a == b));
    FUZZ_CHECK(one("n", "r", 5, a) != one("n", "r", 6, a));  // str vs bytes
    const std::int64_t n = in.ConsumeIntegral<std::int64_t>();
    FUZZ_CHECK(one("n", "r", 5, std::to_string(n)) != one("n", "r", 2, "", n));  // "42" vs 42
  } else {  // glob
    const std::string pattern = in.ConsumeRandomLengthString(24);
    const std::string text = in.ConsumeRemainingBytesAsString();
    FUZZ_CHECK(glob_match(pattern, text) == reference_match(pattern, text));
    FUZZ_CHECK(glob_match("*", text));
    FUZZ_CHECK(glob_match(escaped(text), text));
  }
  return 0;
}
