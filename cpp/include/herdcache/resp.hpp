// RESP2, the Redis wire protocol: encoding commands and parsing replies.
//
// Both halves do no I/O. `append_command` turns an argv into bytes (binary safe: every
// argument is a length-prefixed bulk string). `RespParser` is fed bytes as they arrive
// from a socket, in chunks of any size, and hands back whole replies as owned `Reply`
// values. The parsing itself is hiredis' reader (libhiredis 0.14); we only supply the
// functions that build our `Reply` tree, so each bulk string is copied once, from the
// reader's buffer into its `Reply`.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/errors.hpp"
#include "herdcache/small_string.hpp"

struct redisReader;  // hiredis/read.h; kept out of this header

namespace herdcache {

// The bytes on the wire are not RESP (or nest deeper than hiredis 0.14 supports: 7
// levels). The connection that produced them cannot be trusted any more.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// One reply, owned. A Redis error reply ("-ERR ...") is a Reply of type Error: it is the
// server's answer to that one request, not a fault of the connection.
class Reply {
 public:
  enum class Type : std::uint8_t { Nil, Status, Error, Integer, Bulk, Array };

  Reply() = default;  // nil
  static Reply nil() { return Reply(); }
  static Reply status(std::string text) { return Reply(Type::Status, std::move(text)); }
  static Reply error(std::string message) { return Reply(Type::Error, std::move(message)); }
  static Reply bulk(std::string bytes) { return Reply(Type::Bulk, std::move(bytes)); }
  static Reply integer(std::int64_t value);
  static Reply array(std::vector<Reply> elements);

  Type type() const noexcept { return type_; }
  bool is_nil() const noexcept { return type_ == Type::Nil; }
  bool is_status() const noexcept { return type_ == Type::Status; }
  bool is_error() const noexcept { return type_ == Type::Error; }
  bool is_integer() const noexcept { return type_ == Type::Integer; }
  bool is_bulk() const noexcept { return type_ == Type::Bulk; }
  bool is_array() const noexcept { return type_ == Type::Array; }

  // Status text, error message or bulk bytes; empty for the other types.
  const std::string& str() const noexcept { return str_; }
  std::string& str() noexcept { return str_; }  // to move a large value out
  std::int64_t as_int() const noexcept { return int_; }  // 0 unless Integer
  const std::vector<Reply>& elements() const noexcept { return elements_; }
  std::vector<Reply>& elements() noexcept { return elements_; }

  // Readable, for test failures and logs: "status(OK)", "bulk[3](abc)", "[int(1), nil]".
  // Long or binary payloads are abbreviated.
  std::string debug_string() const;

  friend bool operator==(const Reply&, const Reply&) = default;

 private:
  Reply(Type type, std::string str) : type_(type), str_(std::move(str)) {}
  friend struct ReplyBuilder;  // resp.cpp: builds trees in place for hiredis

  Type type_ = Type::Nil;
  std::string str_;
  std::int64_t int_ = 0;
  std::vector<Reply> elements_;
};

const char* to_string(Reply::Type type) noexcept;

// Appends one command in RESP ("*<argc>\r\n" then "$<len>\r\n<bytes>\r\n" per argument).
// Any bytes are allowed in arguments, including \r\n and NUL. argv must not be empty.
void append_command(std::string& out, std::span<const std::string> argv);
void append_command(std::string& out, std::span<const std::string_view> argv);
std::string encode_command(std::span<const std::string> argv);
std::string encode_command(std::initializer_list<std::string_view> argv);

// One command, encoded as append_command encodes it, by the thread that builds it. Up to
// kInlineBytes of it live in the object (small_string.hpp says why); larger commands, a
// write's payload say, go to the heap.
class Command {
 public:
  static constexpr std::size_t kInlineBytes = 128;

  Command() noexcept = default;  // empty: not a command
  // These throw InvalidArgument when argv is empty.
  Command(std::span<const std::string> argv);       // NOLINT: implicit, like the argv it encodes
  Command(std::span<const std::string_view> argv);  // NOLINT
  Command(const std::vector<std::string>& argv) : Command(std::span<const std::string>(argv)) {}  // NOLINT
  Command(std::initializer_list<std::string_view> argv)  // NOLINT
      : Command(std::span<const std::string_view>(argv.begin(), argv.size())) {}

  std::string_view bytes() const noexcept { return bytes_.view(); }
  bool empty() const noexcept { return bytes_.empty(); }
  bool is_inline() const noexcept { return bytes_.is_inline(); }

 private:
  SmallString<kInlineBytes> bytes_;
};

// Incremental reply parser. Not thread-safe; one per connection.
class RespParser {
 public:
  RespParser();
  ~RespParser();
  RespParser(RespParser&&) noexcept;
  RespParser& operator=(RespParser&&) noexcept;

  // Appends bytes (copied). Throws ProtocolError if the parser already failed.
  void feed(std::string_view bytes);
  // The next whole reply, or nullopt until more bytes arrive. Throws ProtocolError on
  // malformed input; after that every call throws until reset().
  std::optional<Reply> next();
  // Drops buffered bytes and any error: for a new connection.
  void reset();

 private:
  struct ReaderDeleter {
    void operator()(redisReader* reader) const noexcept;
  };
  std::unique_ptr<redisReader, ReaderDeleter> reader_;
};

}  // namespace herdcache
