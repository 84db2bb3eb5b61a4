// `perseus serve`: the coordinator (include/perseus/server/server.h).
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <thread>

#include "cli/commands.h"
#include "cli/job.h"
#include "perseus/server/server.h"

namespace perseus::cli {
namespace {

struct ServeArgs {
  std::string listen = "127.0.0.1:7787";
  std::string db = "perseus.db";
  std::string token_file;
  size_t max_body_mb = 32;
  int threads = 32;
  int planning_threads = 2;
  double planning_time_limit_s = 900;
  int max_connections = 512;
  double request_timeout_s = 10;
  double idle_timeout_s = 30;
  size_t max_json_body_kb = 1024;
};

void Log(const std::string& line) { LogLine("serve", line); }

int RunServe(const ServeArgs& args) {
  const size_t colon = args.listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      port = std::stoi(args.listen.substr(colon + 1), &used);
      if (used != args.listen.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
      port = -1;
    }
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    return ReportError(Status::InvalidInput(
        "--listen must be HOST:PORT (port 0: any free port), got " + args.listen));
  }
  const std::string host = args.listen.substr(0, colon);
  server::ServerOptions options;
  options.db_path = args.db;
  options.max_body_bytes = args.max_body_mb << 20;
  options.threads = args.threads;
  options.max_connections = args.max_connections;
  options.request_timeout_s = args.request_timeout_s;
  options.idle_timeout_s = args.idle_timeout_s;
  options.max_json_body_bytes = args.max_json_body_kb << 10;
  options.planning_threads = args.planning_threads;
  options.planning_time_limit_s = args.planning_time_limit_s;
  options.log = Log;
  if (!args.token_file.empty()) {
    auto token = ReadTokenFile(args.token_file);
    if (!token.ok()) return ReportError(token.status());
    options.token = *token;
  }
  // SIGINT/SIGTERM are taken by a thread that stops the server cleanly.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = server::Server::Open(options);
  if (!server.ok()) return ReportError(server.status());
  auto bound = (*server)->Bind(host, port);
  if (!bound.ok()) return ReportError(bound.status());
  std::printf("perseus: listening on http://%s:%d\n", host.c_str(), *bound);
  std::fflush(stdout);
  Log("database " + args.db +
      (options.token.empty() ? ", no authentication" : ", bearer token required"));
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    Log(std::string("stopping on ") + (sig == SIGINT ? "SIGINT" : "SIGTERM"));
    (*server)->Stop();
  });
  Status served = (*server)->Run();
  pthread_kill(stopper.native_handle(), SIGTERM);  // wakes the stopper if Run ended otherwise
  stopper.join();
  if (!served.ok()) return ReportError(served);
  return 0;
}

}  // namespace

void RegisterServe(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app->add_subcommand(
      "serve",
      "Run the coordinator: an HTTP/JSON service that plans jobs, hands every rank its "
      "frequencies, and moves pipelines to slower plans when another pipeline straggles. All "
      "state is in a SQLite database; restarting on the same database continues where it was.");
  cmd->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  cmd->add_option("--db", args->db, "SQLite database file (created if missing)")
      ->capture_default_str();
  cmd->add_option("--token-file", args->token_file,
                  "File holding a bearer token every /v1 request must carry");
  cmd->add_option("--max-body-mb", args->max_body_mb,
                  "Largest PUT .../profile body, MiB (larger: 413)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Requests handled at once (worker threads)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--max-connections", args->max_connections,
                  "Open connections at most (beyond: 503 and closed)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--request-timeout", args->request_timeout_s,
                  "Seconds a request may take to arrive in full (slower: 408)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd->add_option("--idle-timeout", args->idle_timeout_s,
                  "Seconds an idle keep-alive connection stays open")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  cmd->add_option("--max-json-body-kb", args->max_json_body_kb,
                  "Largest JSON request body other than POST /v1/jobs, KiB (larger: 413)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--planning-threads", args->planning_threads,
                  "Jobs planned at once (queued jobs go smallest first)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--planning-time-limit", args->planning_time_limit_s,
                  "Seconds one job's planning may take; a longer one fails that job")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = RunServe(*args); });
}

}  // namespace perseus::cli
