// The HTTP face of the coordinator (cpp-httplib): routes, bearer-token
// authentication, body size limit, JSON errors, metrics.
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>

#include "perseus/common/json_text.h"
#include "perseus/server/server.h"
#include "src/server/coordinator.h"
#include "src/server/metrics.h"

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

// cpp-httplib as Debian builds it listens with a backlog of 5
// (CPPHTTPLIB_LISTEN_BACKLOG): a burst of connections from many ranks then
// overflows the queue and clients wait a second for the SYN retry. Linux lets
// a listening socket's backlog be raised by calling listen() again.
class HttpServer : public httplib::Server {
 public:
  void RaiseBacklog(int backlog) { ::listen(svr_sock_, backlog); }
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<Coordinator> coordinator;
  Metrics metrics;
  HttpServer http;

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
      metrics.Observe(
          name, HttpStatus(reply.outcome),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    const std::string m = method;
    if (m == "GET") http.Get(pattern, wrapped);
    if (m == "POST") http.Post(pattern, wrapped);
    if (m == "PUT") http.Put(pattern, wrapped);
    if (m == "DELETE") http.Delete(pattern, wrapped);
  }

  void Setup() {
    http.new_task_queue = [threads = options.threads] {
      return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    http.set_payload_max_length(options.max_body_bytes);
    http.set_keep_alive_timeout(2);
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
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message;
      switch (res.status) {
        case 404:
          message = "no route " + req.method + " " + req.path;
          break;
        case 413:
          message = "request body larger than the server's limit";
          break;
        default:
          message = "HTTP " + std::to_string(res.status);
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
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"ok\":true}\n", "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.Render(coordinator->Stats()), "text/plain; version=0.0.4");
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
  if (!impl_->http.listen_after_bind())
    return Status::Internal("the HTTP server stopped with an error");
  return Status::Ok();
}

void Server::Stop() { impl_->http.stop(); }

}  // namespace perseus::server
