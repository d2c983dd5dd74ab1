// RESP encoding, and the glue that lets hiredis' reader build `Reply` trees directly.
//
// hiredis calls one create function per parsed element, with the task describing where
// the element sits (its parent's object and its index there). A root element becomes a
// heap `Reply` that hiredis hands back from redisReaderGetReply (or frees with
// freeObject on error); a child is constructed in place in its parent's pre-sized
// `elements()` vector, so only roots are ever allocated or freed individually.
// The create functions are called from C: they never throw, they return nullptr on
// failure, which hiredis reports as an out-of-memory error.
#include "herdcache/resp.hpp"

#include <hiredis/read.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace herdcache {

Reply Reply::integer(std::int64_t value) {
  Reply reply;
  reply.type_ = Type::Integer;
  reply.int_ = value;
  return reply;
}

Reply Reply::array(std::vector<Reply> elements) {
  Reply reply;
  reply.type_ = Type::Array;
  reply.elements_ = std::move(elements);
  return reply;
}

const char* to_string(Reply::Type type) noexcept {
  switch (type) {
    case Reply::Type::Nil: return "nil";
    case Reply::Type::Status: return "status";
    case Reply::Type::Error: return "error";
    case Reply::Type::Integer: return "integer";
    case Reply::Type::Bulk: return "bulk";
    case Reply::Type::Array: return "array";
  }
  return "?";
}

namespace {

// Printable preview of at most 32 bytes; other bytes as \xNN.
std::string preview(const std::string& bytes) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(bytes.size(), 32);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (std::isprint(c) != 0) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (shown < bytes.size()) out += "...";
  return out;
}

}  // namespace

std::string Reply::debug_string() const {
  switch (type_) {
    case Type::Nil: return "nil";
    case Type::Status: return fmt::format("status({})", preview(str_));
    case Type::Error: return fmt::format("error({})", preview(str_));
    case Type::Integer: return fmt::format("int({})", int_);
    case Type::Bulk: return fmt::format("bulk[{}]({})", str_.size(), preview(str_));
    case Type::Array: {
      std::string out = "[";
      for (std::size_t i = 0; i < elements_.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements_[i].debug_string();
      }
      return out + "]";
    }
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// Encoding

namespace {

// RESP's size of one command: "*<argc>\r\n", then "$<len>\r\n<bytes>\r\n" per argument.
std::size_t digits(std::size_t n) {
  std::size_t count = 1;
  while (n >= 10) {
    n /= 10;
    ++count;
  }
  return count;
}

template <class Arg>
std::size_t encoded_size(std::span<const Arg> argv) {
  if (argv.empty()) throw InvalidArgument("a Redis command needs at least one argument");
  std::size_t bytes = 3 + digits(argv.size());
  for (const auto& arg : argv) bytes += 5 + digits(arg.size()) + arg.size();
  return bytes;
}

// Writes exactly encoded_size(argv) bytes at `out`.
template <class Arg>
void encode_into(char* out, std::span<const Arg> argv) {
  auto header = [&](char kind, std::size_t n) {
    *out++ = kind;
    out = std::to_chars(out, out + 20, n).ptr;  // a size_t has at most 20 digits
    *out++ = '\r';
    *out++ = '\n';
  };
  header('*', argv.size());
  for (const auto& arg : argv) {
    header('$', arg.size());
    if (!arg.empty()) std::memcpy(out, arg.data(), arg.size());
    out += arg.size();
    *out++ = '\r';
    *out++ = '\n';
  }
}

template <class Arg>
void append_command_impl(std::string& out, std::span<const Arg> argv) {
  const std::size_t bytes = encoded_size(argv);
  const std::size_t at = out.size();
  out.resize(at + bytes);
  encode_into(out.data() + at, argv);
}

}  // namespace

void append_command(std::string& out, std::span<const std::string> argv) {
  append_command_impl(out, argv);
}

void append_command(std::string& out, std::span<const std::string_view> argv) {
  append_command_impl(out, argv);
}

std::string encode_command(std::span<const std::string> argv) {
  std::string out;
  append_command(out, argv);
  return out;
}

std::string encode_command(std::initializer_list<std::string_view> argv) {
  std::string out;
  append_command(out, std::span<const std::string_view>(argv.begin(), argv.size()));
  return out;
}

Command::Command(std::span<const std::string> argv) {
  encode_into(bytes_.allocate(encoded_size(argv)), argv);
}

Command::Command(std::span<const std::string_view> argv) {
  encode_into(bytes_.allocate(encoded_size(argv)), argv);
}

// ---------------------------------------------------------------------------------------
// Parsing

struct ReplyBuilder {
  static constexpr std::size_t kReserveElements = 1024;  // reserved up front, at most


  // Where the element described by `task` lives: a new root, or its slot in the parent.
  static Reply* slot(const redisReadTask* task) {
    if (task->parent == nullptr) return new Reply();
    auto* parent = static_cast<Reply*>(task->parent->obj);
    // Elements come in order, each once its previous sibling is complete, so they are
    // appended as they arrive: no pointer hiredis still holds goes into a vector that grows.
    // (hiredis 0.14 passes createArray the count as an int; appending never relies on it.)
    auto& elements = parent->elements_;
    if (task->idx < 0 || static_cast<std::size_t>(task->idx) != elements.size()) return nullptr;
    return &elements.emplace_back();
  }

  static void* create_string(const redisReadTask* task, char* str, size_t len) noexcept {
    try {
      Reply* reply = slot(task);
      if (reply == nullptr) return nullptr;
      switch (task->type) {
        case REDIS_REPLY_STATUS: reply->type_ = Reply::Type::Status; break;
        case REDIS_REPLY_ERROR: reply->type_ = Reply::Type::Error; break;
        default: reply->type_ = Reply::Type::Bulk; break;
      }
      reply->str_.assign(str, len);
      return reply;
    } catch (...) {
      return nullptr;  // hiredis reports it as "Out of memory"
    }
  }

  static void* create_array(const redisReadTask* task, int elements) noexcept {
    if (elements < 0) return nullptr;
    try {
      Reply* reply = slot(task);
      if (reply == nullptr) return nullptr;
      reply->type_ = Reply::Type::Array;
      // The count is the server's word: memory is taken for elements as they arrive, not
      // for the count ("*2000000000\r\n" would otherwise allocate ~150 GB from 13 bytes).
      reply->elements_.reserve(std::min(static_cast<std::size_t>(elements), kReserveElements));
      return reply;
    } catch (...) {
      return nullptr;
    }
  }

  static void* create_integer(const redisReadTask* task, long long value) noexcept {
    try {
      Reply* reply = slot(task);
      if (reply == nullptr) return nullptr;
      reply->type_ = Reply::Type::Integer;
      reply->int_ = value;
      return reply;
    } catch (...) {
      return nullptr;
    }
  }

  static void* create_nil(const redisReadTask* task) noexcept {
    try {
      return slot(task);  // a default Reply is nil
    } catch (...) {
      return nullptr;
    }
  }

  // hiredis frees only roots (a reply it gives up on); children live inside their root.
  static void free_object(void* obj) noexcept { delete static_cast<Reply*>(obj); }
};

namespace {

redisReplyObjectFunctions kReplyFunctions = {
    ReplyBuilder::create_string, ReplyBuilder::create_array, ReplyBuilder::create_integer,
    ReplyBuilder::create_nil, ReplyBuilder::free_object,
};

redisReader* new_reader() {
  redisReader* reader = redisReaderCreateWithFunctions(&kReplyFunctions);
  if (reader == nullptr) throw std::bad_alloc();
  return reader;
}

}  // namespace

void RespParser::ReaderDeleter::operator()(redisReader* reader) const noexcept {
  redisReaderFree(reader);
}

RespParser::RespParser() : reader_(new_reader()) {}
RespParser::~RespParser() = default;
RespParser::RespParser(RespParser&&) noexcept = default;
RespParser& RespParser::operator=(RespParser&&) noexcept = default;

void RespParser::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  if (redisReaderFeed(reader_.get(), bytes.data(), bytes.size()) != REDIS_OK) {
    throw ProtocolError(fmt::format("RESP parser: {}", reader_->errstr));
  }
}

std::optional<Reply> RespParser::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
    throw ProtocolError(fmt::format("RESP parser: {}", reader_->errstr));
  }
  if (raw == nullptr) return std::nullopt;
  std::unique_ptr<Reply> root(static_cast<Reply*>(raw));
  return std::move(*root);
}

void RespParser::reset() { reader_.reset(new_reader()); }

}  // namespace herdcache
