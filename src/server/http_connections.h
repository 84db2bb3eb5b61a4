// The connections of the coordinator's HTTP server, event-driven in front of
// cpp-httplib's request processing.
//
// cpp-httplib 0.11 gives every connection a pool thread for the connection's
// whole life: a client that sends one header byte every 2 s, or an idle
// keep-alive connection, holds a thread, so 32 slow clients stop a 32-thread
// server. Here one thread (epoll) holds every connection and reads what
// arrives into the connection's buffer; only a request whose headers and body
// have arrived in full goes to a worker thread, which runs cpp-httplib's
// process_request on the buffered bytes and writes the reply to the socket.
// So a slow or idle client costs a file descriptor and its buffer, never a
// worker, and:
//   - a request must arrive in full within `request_timeout_s` of its first
//     byte (408 and close otherwise);
//   - an idle keep-alive connection is closed after `idle_timeout_s`;
//   - at most `max_connections` are open; beyond, a connection gets 503 and
//     is closed;
//   - the body's size is checked against `body_limit(method, path)` from
//     Content-Length before any of the body is read (413 and close); a
//     request without Content-Length that has a body (chunked) gets 411;
//   - headers are at most `max_header_bytes` (431 and close);
//   - the bodies being buffered share `max_buffered_bytes` (503 beyond);
//   - a method the route does not have gets 405 with an Allow header.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace perseus::server {

struct ConnectionOptions {
  int threads = 32;  // workers running requests
  int max_connections = 512;
  double request_timeout_s = 10;
  double idle_timeout_s = 30;
  size_t max_header_bytes = 16 << 10;
  // The request bodies being buffered, all connections together; a request
  // whose Content-Length would exceed it gets 503 (so 512 connections cannot
  // each buffer a 32 MB body at once).
  size_t max_buffered_bytes = 256 << 20;
  size_t max_requests_per_connection = 1000;
  double write_timeout_s = 10;
  // The largest body accepted for a request line's method and path.
  std::function<size_t(std::string_view method, std::string_view path)> body_limit;
  // For a path that is a route `method` is not allowed on: the methods that
  // are ("GET, POST"), answered as 405 with that Allow header. Empty otherwise
  // (an unknown path goes on to the router's 404).
  std::function<std::string(std::string_view method, std::string_view path)> allowed_methods;
  // Called once per request or connection refused here (not by the routes):
  // "connection_limit", "request_timeout", "body_too_large", "header_too_large",
  // "length_required", "bad_request", "method_not_allowed", "server_busy".
  std::function<void(const char* reason)> rejected;
};

// Runs one request from the stream (cpp-httplib's Server::process_request).
using ProcessRequest =
    std::function<bool(httplib::Stream& stream, bool close_connection, bool& connection_closed)>;

class Connections {
 public:
  Connections(const ConnectionOptions& options, ProcessRequest process);
  ~Connections();  // Stop()
  Connections(const Connections&) = delete;
  Connections& operator=(const Connections&) = delete;

  // Takes an accepted socket (closes it, one way or another). Thread-safe.
  void Adopt(int sock);
  // Closes every connection and joins the threads; later Adopt()s close at once.
  void Stop();

  // Connections open now.
  int open() const;
  // Bytes reserved now for the request bodies being buffered (all connections).
  size_t buffered() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace perseus::server
