// The PostgreSQL listener's bridge to Python: herdcache._native.PgListener and pg_query.
//
// The listener's I/O thread never touches a Python object: each notification and each
// connection event becomes a PgEvent pushed onto a WakeQueue (eventfd written on
// empty -> non-empty only). Python watches `fd` with loop.add_reader and calls drain(),
// which takes the whole batch with the GIL held and returns it as tuples:
//   ("notify", channel, payload) | ("connected", after_loss, detail) | ("lost", detail)
//   | ("overflow", dropped)
// The queue is bounded (max_pending): past it, events are dropped and one "overflow"
// marker is queued instead; Python must treat it like a gap (something was missed).
#include <atomic>
#include <memory>

#include <pybind11/stl.h>

#include "bindings.hpp"

#include <fmt/format.h>
#include "herdcache/completions.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/pg_listener.hpp"

namespace herdcache::py_bindings {

namespace {

// What Python's listener is handed, one per event (bound as PgEvent).
struct PgEvent {
  enum class Kind : std::uint8_t { Notify, Connected, Lost, Overflow } kind;
  bool after_loss = false;
  std::string a;  // channel, or the event's detail
  std::string b;  // payload
  std::uint64_t dropped = 0;  // Overflow: events dropped since the last one
};

struct PgEventQueue {
  explicit PgEventQueue(std::size_t limit) : max_pending(limit) {}
  WakeQueue<PgEvent> queue;
  const std::size_t max_pending;
  std::atomic<std::size_t> pending{0};
  std::atomic<bool> overflowed{false};
  std::atomic<std::uint64_t> dropped{0};

  // I/O thread.
  void push(PgEvent event) {
    if (pending.load() >= max_pending) {
      dropped.fetch_add(1);
      if (!overflowed.exchange(true)) {
        pending.fetch_add(1);
        queue.push(PgEvent{PgEvent::Kind::Overflow, false, {}, {}, 0});
      }
      return;
    }
    pending.fetch_add(1);
    queue.push(std::move(event));
  }
};

class PgListenerHandle {
 public:
  PgListenerHandle(const std::string& dsn, std::vector<std::string> channels, PgListenerOptions options,
                   std::size_t max_pending)
      : events_(std::make_shared<PgEventQueue>(max_pending)) {
    if (max_pending < 1) throw InvalidArgument("max_pending must be >= 1");
    std::weak_ptr<PgEventQueue> weak = events_;
    listener_ = std::make_unique<PgListener>(
        dsn, std::move(channels), options,
        [weak](const std::string& channel, const std::string& payload) {
          if (auto q = weak.lock()) q->push(PgEvent{PgEvent::Kind::Notify, false, channel, payload, 0});
        },
        [weak](const ConnectionEvent& e) {
          auto q = weak.lock();
          if (!q) return;
          q->push(PgEvent{e.connected ? PgEvent::Kind::Connected : PgEvent::Kind::Lost, e.after_loss, e.detail, {}, 0});
        });
  }

  int fd() const { return events_->queue.fd(); }
  bool connected() const { return listener_ && listener_->connected(); }

  py::list drain() {
    events_->queue.drain(batch_);
    events_->pending.fetch_sub(batch_.size());
    py::list out;
    for (auto& e : batch_) {
      if (e.kind == PgEvent::Kind::Overflow) {
        events_->overflowed.store(false);
        e.dropped = events_->dropped.exchange(0);
      }
      out.append(py::cast(std::move(e)));
    }
    batch_.clear();
    return out;
  }

  void close() {
    if (!listener_) return;
    py::gil_scoped_release release;  // the I/O thread never needs the GIL; joining it is safe
    listener_->close();
  }

 private:
  std::shared_ptr<PgEventQueue> events_;
  std::unique_ptr<PgListener> listener_;
  std::vector<PgEvent> batch_;
};

}  // namespace

void register_postgres(py::module_& m) {
  using Kind = PgEvent::Kind;
  auto event = py::class_<PgEvent>(m, "PgEvent", "One PostgreSQL listener event (drain()).")
                   .def_property_readonly("kind", [](const PgEvent& e) { return static_cast<int>(e.kind); })
                   .def_property_readonly("channel", [](const PgEvent& e) { return e.a; })
                   .def_property_readonly("payload", [](const PgEvent& e) { return py::bytes(e.b); })
                   .def_property_readonly("detail", [](const PgEvent& e) { return e.a; })
                   .def_readonly("after_loss", &PgEvent::after_loss)
                   .def_readonly("dropped", &PgEvent::dropped)
                   .def("__repr__", [](const PgEvent& e) {
                     static constexpr const char* kNames[] = {"notify", "connected", "lost", "overflow"};
                     return fmt::format("PgEvent({}, {:?}, {} payload bytes)", kNames[static_cast<int>(e.kind)], e.a,
                                        e.b.size());
                   });
  for (auto [name, kind] : {std::pair{"NOTIFY", Kind::Notify}, {"CONNECTED", Kind::Connected}, {"LOST", Kind::Lost},
                            {"OVERFLOW", Kind::Overflow}}) {
    event.attr(name) = static_cast<int>(kind);
  }

  py::class_<PgListenerHandle>(m, "PgListener", "A libpq LISTEN thread feeding an eventfd queue.")
      .def(py::init([](const std::string& dsn, std::vector<std::string> channels, std::int64_t connect_timeout_ms,
                       std::int64_t health_interval_ms, std::int64_t health_timeout_ms,
                       std::int64_t backoff_initial_ms, std::int64_t backoff_max_ms, std::size_t max_pending) {
             PgListenerOptions options;
             options.connect_timeout_ms = connect_timeout_ms;
             options.health_interval_ms = health_interval_ms;
             options.health_timeout_ms = health_timeout_ms;
             options.backoff_initial_ms = backoff_initial_ms;
             options.backoff_max_ms = backoff_max_ms;
             return std::make_unique<PgListenerHandle>(dsn, std::move(channels), options, max_pending);
           }),
           py::arg("dsn"), py::arg("channels"), py::arg("connect_timeout_ms") = 5000,
           py::arg("health_interval_ms") = 10000, py::arg("health_timeout_ms") = 5000,
           py::arg("backoff_initial_ms") = 50, py::arg("backoff_max_ms") = 5000, py::arg("max_pending") = 10000)
      .def_property_readonly("fd", &PgListenerHandle::fd)
      .def_property_readonly("connected", &PgListenerHandle::connected)
      .def("drain", &PgListenerHandle::drain)
      .def("close", &PgListenerHandle::close);

  m.def(
      "pg_validate_dsn", [](const std::string& dsn) { validate_conninfo(dsn); }, py::arg("dsn"));
  m.def(
      "pg_query",
      [](const std::string& dsn, const std::string& sql, std::vector<std::string> params,
         std::int64_t connect_timeout_ms) {
        std::vector<PgRow> rows;
        {
          py::gil_scoped_release release;  // arguments are converted; libpq touches no Python object
          rows = pg_query(dsn, sql, params, connect_timeout_ms);
        }
        py::list out;
        for (auto& row : rows) {
          py::list cells;
          for (auto& cell : row) cells.append(cell ? py::object(py::str(*cell)) : py::object(py::none()));
          out.append(py::tuple(cells));
        }
        return out;
      },
      py::arg("dsn"), py::arg("sql"), py::arg("params") = std::vector<std::string>{},
      py::arg("connect_timeout_ms") = 5000);
}

}  // namespace herdcache::py_bindings
