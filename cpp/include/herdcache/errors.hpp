// One error tree for the engine. The bindings map each class to one Python type:
//   InvalidArgument -> ValueError, KeyTypeError -> TypeError, ClosedError -> RuntimeError,
//   everything else -> herdcache.CacheError. No bare std::runtime_error crosses the boundary.
#pragma once
#include <stdexcept>
#include <string>

namespace herdcache {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed a value outside its domain (negative TTL, NaN, unknown option).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A key component of a type the key encoding does not accept.
class KeyTypeError : public Error {
 public:
  using Error::Error;
};

// The manager was closed; every further call is refused.
class ClosedError : public Error {
 public:
  using Error::Error;
};

}  // namespace herdcache
