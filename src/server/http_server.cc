// The HTTP face of the coordinator (cpp-httplib): routes, bearer-token
// authentication, per-route body size limits, JSON errors, metrics; the
// connections themselves are Connections' (src/server/http_connections.h).
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <vector>

#include "perseus/common/json_text.h"
#include "perseus/server/server.h"
#include "src/server/coordinator.h"
#include "src/server/http_connections.h"
#include "src/server/metrics.h"
#include "src/server/openapi.h"

namespace perseus::server {
namespace {

using nlohmann::json;

// Compares in time independent of where the strings differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// The HTTP status code of each domain outcome (the only place they live).
int HttpStatus(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return 200;
    case Outcome::kCreated:
      return 201;
    case Outcome::kAccepted:
      return 202;
    case Outcome::kNotModified:
      return 304;
    case Outcome::kInvalid:
      return 400;
    case Outcome::kNotFound:
      return 404;
    case Outcome::kConflict:
      return 409;
    case Outcome::kFailed:
      return 500;
  }
  return 500;
}

// A plan's ETag: "j<job>-p<pipeline>-v<version>".
std::string PlanEtag(int64_t job, int pipeline, int64_t version) {
  return "\"j" + std::to_string(job) + "-p" + std::to_string(pipeline) + "-v" +
         std::to_string(version) + "\"";
}

// The plan an If-None-Match names for `job` (anything else: none).
KnownPlan ParsePlanEtag(const std::string& header, int64_t job) {
  const std::string prefix = "\"j" + std::to_string(job) + "-p";
  if (header.rfind(prefix, 0) != 0 || header.size() < prefix.size() + 4 || header.back() != '"') {
    return {};
  }
  const std::string rest = header.substr(prefix.size(), header.size() - prefix.size() - 1);
  const size_t v = rest.find("-v");
  int64_t pipeline = 0, version = 0;
  if (v == std::string::npos || !ParseCount(rest.substr(0, v), &pipeline) ||
      !ParseCount(rest.substr(v + 2), &version) || pipeline > INT32_MAX) {
    return {};
  }
  return KnownPlan{static_cast<int>(pipeline), version};
}

void Send(httplib::Response& res, const Reply& reply, int64_t job) {
  res.status = HttpStatus(reply.outcome);
  if (reply.plan_version >= 0) {
    res.set_header("ETag", PlanEtag(job, reply.plan_pipeline, reply.plan_version));
  }
  if (reply.outcome == Outcome::kNotModified) return;
  res.set_content(JsonText(reply.body) + "\n", "application/json");
}

bool JobId(const httplib::Request& req, int64_t* id) {
  return ParseCount(req.matches[1].str(), id);
}

// Runs each task at once, on the accepting thread: the task only hands the
// socket to Connections.
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// cpp-httplib as Debian builds it listens with a backlog of 5
// (CPPHTTPLIB_LISTEN_BACKLOG): a burst of connections from many ranks then
// overflows the queue and clients wait a second for the SYN retry. Linux lets
// a listening socket's backlog be raised by calling listen() again.
//
// Its own connection handling (a pool thread per connection for the
// connection's life) is replaced: an accepted socket goes to `adopt`
// (Connections), which calls RunRequest for each request once it is buffered.
class HttpServer : public httplib::Server {
 public:
  void RaiseBacklog(int backlog) { ::listen(svr_sock_, backlog); }
  bool RunRequest(httplib::Stream& stream, bool close_connection, bool& connection_closed) {
    return process_request(stream, close_connection, connection_closed, nullptr);
  }
  std::function<void(int)> adopt;

 private:
  bool process_and_close_socket(::socket_t sock) override {
    adopt(sock);
    return true;
  }
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<Coordinator> coordinator;
  Metrics metrics;
  HttpServer http;
  std::unique_ptr<Connections> connections;  // after http: stopped and destroyed first

  using Handler = std::function<Reply(const httplib::Request&, int64_t job)>;

  // Registers a route under /v1/jobs/{id}...; times and counts it.
  void Route(const char* method, const std::string& pattern, const std::string& name,
             Handler handler) {
    auto wrapped = [this, name, handler](const httplib::Request& req, httplib::Response& res) {
      const auto start = std::chrono::steady_clock::now();
      int64_t job = 0;
      Reply reply = req.matches.size() > 1 && !JobId(req, &job)
                        ? Error(Outcome::kNotFound, "no such job")
                        : handler(req, job);
      Send(res, reply, job);
      const int status = HttpStatus(reply.outcome);
      if (status >= 400 && status < 500) metrics.Reject(RejectReason(status));
      metrics.Observe(
          name, HttpStatus(reply.outcome),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    const std::string m = method;
    routes.emplace_back(m, std::regex(pattern));
    if (m == "GET") http.Get(pattern, wrapped);
    if (m == "POST") http.Post(pattern, wrapped);
    if (m == "PUT") http.Put(pattern, wrapped);
    if (m == "DELETE") http.Delete(pattern, wrapped);
  }

  // Every route's method and path pattern (what 405 and Allow come from).
  std::vector<std::pair<std::string, std::regex>> routes;

  // The methods allowed on `path` if it is a route and `method` is not one of
  // them; empty otherwise. HEAD goes with GET, as cpp-httplib routes it.
  std::string AllowedMethods(std::string_view method, std::string_view path) const {
    std::vector<std::string> allowed;
    bool found = false;
    const std::string p(path);
    for (const auto& [m, pattern] : routes) {
      if (!std::regex_match(p, pattern)) continue;
      found = true;
      if (m == method || (method == "HEAD" && m == "GET")) return "";
      if (std::find(allowed.begin(), allowed.end(), m) == allowed.end()) allowed.push_back(m);
    }
    if (!found) return "";
    std::string out;
    for (const auto& m : allowed) out += (out.empty() ? "" : ", ") + m;
    return out;
  }

  // The largest body a request may have: the profile's upload (CSV or
  // per-rank measurements) is large, every other route takes a small JSON.
  size_t BodyLimit(std::string_view method, std::string_view path) const {
    const std::string_view suffix = "/profile";
    if (method == "PUT" && path.size() > suffix.size() &&
        path.substr(path.size() - suffix.size()) == suffix) {
      return options.max_body_bytes;
    }
    if (method == "POST" && path == "/v1/jobs") return options.max_job_body_bytes;
    return options.max_json_body_bytes;
  }

  static const char* RejectReason(int status) {
    switch (status) {
      case 400:
        return "bad_request";
      case 401:
        return "unauthorized";
      case 404:
        return "not_found";
      case 409:
        return "conflict";
      case 413:
        return "body_too_large";
      case 415:
        return "unsupported_media_type";
      default:
        return "other";
    }
  }

  void Setup() {
    ConnectionOptions copts;
    copts.threads = options.threads;
    copts.max_connections = options.max_connections;
    copts.request_timeout_s = options.request_timeout_s;
    copts.idle_timeout_s = options.idle_timeout_s;
    copts.max_buffered_bytes = std::max({options.max_buffered_body_bytes, options.max_body_bytes,
                                         options.max_job_body_bytes, options.max_json_body_bytes});
    copts.body_limit = [this](std::string_view method, std::string_view path) {
      return BodyLimit(method, path);
    };
    copts.rejected = [this](const char* reason) { metrics.Reject(reason); };
    copts.allowed_methods = [this](std::string_view method, std::string_view path) {
      return AllowedMethods(method, path);
    };
    connections = std::make_unique<Connections>(
        copts, [this](httplib::Stream& stream, bool close_connection, bool& connection_closed) {
          return http.RunRequest(stream, close_connection, connection_closed);
        });
    http.adopt = [this](int sock) { connections->Adopt(sock); };
    http.new_task_queue = [] { return new InlineQueue; };
    // Connections applies the per-route limits before the body is read; this
    // is cpp-httplib's own check, the largest of them.
    http.set_payload_max_length(std::max(
        {options.max_body_bytes, options.max_job_body_bytes, options.max_json_body_bytes}));
    http.set_keep_alive_timeout(static_cast<time_t>(options.idle_timeout_s));
    http.set_keep_alive_max_count(1000);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (options.token.empty() || req.path.rfind("/v1/", 0) != 0) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      const std::string header = req.get_header_value("Authorization");
      const std::string expected = "Bearer " + options.token;
      if (ConstantTimeEquals(header, expected)) return httplib::Server::HandlerResponse::Unhandled;
      res.status = 401;
      res.set_content(
          JsonText(json{{"error", "missing or wrong bearer token (Authorization: Bearer <token>)"},
                        {"field", "Authorization"}}) +
              "\n",
          "application/json");
      metrics.Observe("unauthorized", 401, 0);
      metrics.Reject("unauthorized");
      return httplib::Server::HandlerResponse::Handled;
    });
    // Runs for every reply of status >= 400, the routes' own included (their
    // body is set): those the routes rejected are counted in Route.
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message;
      switch (res.status) {
        case 404:
          message = "no route " + req.method + " " + req.path;
          metrics.Reject("no_route");
          break;
        case 413:
          message = "request body larger than the server's limit";
          metrics.Reject("body_too_large");
          break;
        default:
          message = "HTTP " + std::to_string(res.status);
          metrics.Reject(res.status == 400 ? "bad_request" : "other");
      }
      // The path may hold any bytes: replace what is not UTF-8.
      res.set_content(JsonText(json{{"error", message}}) + "\n", "application/json");
    });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          res.status = 500;
          res.set_content(json{{"error", "internal error"}}.dump() + "\n", "application/json");
        });

    Coordinator& c = *coordinator;
    for (const char* path : {"/healthz", "/metrics", "/v1/openapi.json"}) {
      routes.emplace_back("GET", std::regex(path));
    }
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"ok\":true}\n", "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.Render(coordinator->Stats(), connections->open()),
                      "text/plain; version=0.0.4");
    });
    http.Get("/v1/openapi.json", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kOpenApiJson), "application/json");
    });
    Route("POST", "/v1/jobs", "create_job",
          [&c](const httplib::Request& req, int64_t) { return c.CreateJob(req.body); });
    Route("GET", "/v1/jobs", "list_jobs", [&c](const httplib::Request& req, int64_t) {
      return c.ListJobs(req.get_param_value("state"));
    });
    const std::string job = R"(/v1/jobs/(\d+))";
    Route("GET", job, "get_job",
          [&c](const httplib::Request&, int64_t id) { return c.GetJob(id); });
    Route("DELETE", job, "delete_job",
          [&c](const httplib::Request&, int64_t id) { return c.DeleteJob(id); });
    Route("POST", job + "/ranks", "register_rank",
          [&c](const httplib::Request& req, int64_t id) { return c.RegisterRank(id, req.body); });
    Route("PUT", job + "/profile", "put_profile", [&c](const httplib::Request& req, int64_t id) {
      return c.PutProfile(id, req.get_header_value("Content-Type"), req.body);
    });
    Route("GET", job + "/frontier", "get_frontier",
          [&c](const httplib::Request&, int64_t id) { return c.GetFrontier(id); });
    Route("GET", job + "/plan", "get_plan", [&c](const httplib::Request& req, int64_t id) {
      return c.GetPlan(id, req.get_param_value("rank"), req.get_param_value("since"),
                       ParsePlanEtag(req.get_header_value("If-None-Match"), id));
    });
    Route("POST", job + "/stragglers", "add_straggler",
          [&c](const httplib::Request& req, int64_t id) { return c.AddStraggler(id, req.body); });
    Route("DELETE", job + R"(/stragglers/([^/]+))", "remove_straggler",
          [&c](const httplib::Request& req, int64_t id) {
            return c.RemoveStraggler(id, req.matches[2].str());
          });
    Route(
        "POST", job + "/iterations", "report_iteration",
        [&c](const httplib::Request& req, int64_t id) { return c.ReportIteration(id, req.body); });
    Route("GET", job + "/report", "get_report",
          [&c](const httplib::Request&, int64_t id) { return c.GetReport(id); });
  }
};

Result<std::unique_ptr<Server>> Server::Open(const ServerOptions& options) {
  CoordinatorOptions coordinator_options;
  coordinator_options.planning_threads = options.planning_threads;
  coordinator_options.planning_time_limit_s = options.planning_time_limit_s;
  auto coordinator = Coordinator::Open(options.db_path, options.log, coordinator_options);
  if (!coordinator.ok()) return coordinator.status();
  auto server = std::unique_ptr<Server>(new Server);
  server->impl_ = std::make_unique<Impl>();
  server->impl_->options = options;
  server->impl_->coordinator = std::move(coordinator).value();
  server->impl_->Setup();
  return server;
}

Server::~Server() = default;

Result<int> Server::Bind(const std::string& host, int port) {
  if (port == 0) {
    const int bound = impl_->http.bind_to_any_port(host);
    if (bound <= 0) return Status::Unavailable("cannot listen on " + host + " (any port)");
    impl_->http.RaiseBacklog(4096);
    return bound;
  }
  if (!impl_->http.bind_to_port(host, port)) {
    return Status::Unavailable("cannot listen on " + host + ":" + std::to_string(port) +
                               " (in use, or not an address of this machine)");
  }
  impl_->http.RaiseBacklog(4096);
  return port;
}

Status Server::Run() {
  const bool ok = impl_->http.listen_after_bind();
  impl_->connections->Stop();
  if (!ok) return Status::Internal("the HTTP server stopped with an error");
  return Status::Ok();
}

void Server::Stop() { impl_->http.stop(); }

}  // namespace perseus::server
