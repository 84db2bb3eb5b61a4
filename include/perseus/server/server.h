// The coordinator: an HTTP/JSON service holding every job's profile, frontier,
// per-rank plans and straggler set, with all state in SQLite.
//
// API (all JSON unless noted; errors are 4xx {"error": "...", "field": "..."}):
//   POST   /v1/jobs                         create a job -> 201 {job_id}
//   GET    /v1/jobs[?state=S]               every job's id, name, state, progress
//   GET    /v1/jobs/{id}                    state, progress, figures
//   DELETE /v1/jobs/{id}                    cancel its planning, remove it and its data
//   POST   /v1/jobs/{id}/ranks              register a rank (idempotent; conflict 409)
//   PUT    /v1/jobs/{id}/profile            text/csv profile, or JSON per-rank measurements -> 202
//   GET    /v1/jobs/{id}/frontier           frontier points
//   GET    /v1/jobs/{id}/plan?rank=R        the rank's instructions and frequencies; ETag /
//                                           If-None-Match or ?since=VERSION -> 304 when unchanged
//   POST   /v1/jobs/{id}/stragglers         {pipeline, slowdown | iteration_time}
//   DELETE /v1/jobs/{id}/stragglers/{p}     the pipeline recovered
//   POST   /v1/jobs/{id}/iterations         {rank, iteration, time_s, energy_j}
//   GET    /v1/jobs/{id}/report             energy and savings so far
//   GET    /v1/openapi.json                 this API's OpenAPI 3 description
//   GET    /healthz, GET /metrics (Prometheus text)
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "perseus/common/status.h"

namespace perseus::server {

struct ServerOptions {
  std::string db_path = "perseus.db";
  std::string token;                    // non-empty: /v1 needs "Authorization: Bearer <token>"
  size_t max_body_bytes = 32 << 20;     // PUT .../profile bodies larger get 413 (before being read)
  size_t max_job_body_bytes = 8 << 20;  // POST /v1/jobs (its schedule_csv may be 4 MB)
  size_t max_json_body_bytes = 1 << 20;  // every other request's body
  int threads = 32;                      // HTTP worker threads (requests run at once)
  // Connections: every open one is held by one event thread, and a request
  // goes to a worker only once it has arrived in full, so slow and idle
  // clients hold no worker.
  int max_connections = 512;      // beyond it, a new connection gets 503 and is closed
  double request_timeout_s = 10;  // a request must arrive in full within this of its first byte
  double idle_timeout_s = 30;     // idle keep-alive connections are closed after this
  // Request bodies being received, all connections together (at least the
  // largest body limit); a request beyond it gets 503.
  size_t max_buffered_body_bytes = 256 << 20;
  int planning_threads = 2;                     // jobs planned at once (smallest queued first)
  double planning_time_limit_s = 900;           // a longer planning fails its job
  std::function<void(const std::string&)> log;  // one line per notable event; may be empty
};

class Coordinator;

class Server {
 public:
  // Opens (or creates) the database and restores every job; frontiers whose
  // computation a crash interrupted are queued again.
  static Result<std::unique_ptr<Server>> Open(const ServerOptions& options);
  ~Server();

  // Binds host:port (port 0: any free port); returns the port.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop() (from another thread or a signal handler's helper).
  Status Run();
  void Stop();

 private:
  Server() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace perseus::server
