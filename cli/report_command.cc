// `perseus report --out DIR`: a self-contained HTML report (DIR/report.html)
// of a job: frontier, plan timeline, savings against straggler slowdown.
// Without --profile it reports on the demo job.
//
// `perseus report --server URL --job ID`: the measured energy and time per
// iteration of a job on a running `perseus serve` (GET /v1/jobs/ID and
// /v1/jobs/ID/report): a table, --json, or --out DIR for DIR/report.html.
#include <httplib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/job.h"
#include "cli/options.h"
#include "nlohmann/json.hpp"
#include "perseus/common/files.h"
#include "perseus/common/number_text.h"
#include "perseus/emulator/emulator.h"
#include "perseus/job/job.h"
#include "perseus/report/json_fields.h"
#include "perseus/report/report.h"

namespace perseus::cli {
namespace {

struct ReportArgs {
  job::JobSpec job;
  std::string out_dir;
  double deadline_s = 0;
  int pipelines = 0;
  std::vector<std::string> slowdowns = {"1.0:1.5:0.05"};
  // Coordinator mode.
  std::string server;
  int64_t job_id = -1;
  std::string token_file;
  bool json = false;
};

using nlohmann::json;

// What went wrong when no reply came, in words.
std::string Why(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "could not connect (is `perseus serve` running there?)";
    case httplib::Error::ConnectionTimeout:
      return "timed out connecting";
    case httplib::Error::Read:
      return "no reply (the connection closed or timed out)";
    case httplib::Error::Write:
      return "could not send the request";
    default:
      return httplib::to_string(error);
  }
}

// One GET of the coordinator's API: the body as JSON, or why not.
Result<json> Get(httplib::Client& client, const std::string& url, const std::string& path,
                 int64_t job_id) {
  httplib::Result r = client.Get(path);
  if (!r) {
    return Status::Unavailable("cannot reach " + url + ": " + Why(r.error()));
  }
  const json body = json::parse(r->body, nullptr, false);
  std::string message;
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    message = body["error"].get<std::string>();
  }
  if (r->status == 404) {
    const std::string what = "no job " + std::to_string(job_id);
    return Status::NotFound(what + " on " + url +
                            (message.empty() || message == what ? "" : " (" + message + ")"));
  }
  if (r->status == 401) {
    return Status::PermissionDenied(url + path + ": HTTP 401" +
                                    (message.empty() ? "" : ": " + message) +
                                    " (give the server's token with --token-file)");
  }
  if (r->status != 200) {
    return Status::Unavailable(url + path + ": HTTP " + std::to_string(r->status) +
                               (message.empty() ? "" : ": " + message));
  }
  if (!body.is_object()) return Status::Unavailable(url + path + ": the reply is not JSON");
  return body;
}

using report::Member;
using report::Number;

std::string Text(const json& obj, const char* key, const std::string& otherwise = "n/a") {
  return report::TextOr(obj, key, otherwise);
}

std::string Figure(const char* fmt, std::optional<double> v) {
  return report::FigureOr(fmt, v, "n/a");
}

// The job's blocking power in job::BlockingPowerText's words, and its source:
// "83.64 W per GPU (1-GPU stages), from config".
std::string BlockingText(const json& job) {
  const json& blocking = Member(job, "blocking_power");
  const auto w = Number(blocking, "w");
  if (!w) return "n/a";
  const auto tp = Number(Member(job, "config"), "tp");
  return job::BlockingPowerText(*w, tp ? static_cast<int>(*tp) : 1) + ", from " +
         Text(blocking, "source");
}

// The human table: the job, then one row per pipeline and one for the job.
std::string JobTable(const json& job, const json& report) {
  const json& measured = Member(report, "measured");
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "Perseus job %s (%s): %s, blocking power %s\n",
                Text(job, "job_id", Text(report, "job_id")).c_str(),
                Text(Member(job, "config"), "name", "unnamed").c_str(), Text(job, "state").c_str(),
                BlockingText(job).c_str());
  out += line;
  std::snprintf(line, sizeof(line), "  %s iteration reports over %s iterations\n\n",
                Figure("%.0f", Number(report, "reports")).c_str(),
                Figure("%.0f", Number(report, "iterations")).c_str());
  out += line;
  std::snprintf(line, sizeof(line), "  %-8s %12s %12s %12s %10s %10s %10s %10s %9s\n", "",
                "iterations", "baseline", "Perseus", "saving", "saving", "baseline", "Perseus",
                "slowdown");
  out += line;
  std::snprintf(line, sizeof(line), "  %-8s %12s %12s %12s %10s %10s %10s %10s %9s\n", "pipeline",
                "base/Perseus", "(J/iter)", "(J/iter)", "(measured)", "(model)", "(s/iter)",
                "(s/iter)", "");
  out += line;
  while (out.size() > 1 && out[out.size() - 2] == ' ') out.erase(out.size() - 2, 1);
  auto row = [&](const std::string& name, const std::string& iterations, const json& m) {
    std::snprintf(line, sizeof(line), "  %-8s %12s %12s %12s %10s %10s %10s %10s %9s\n",
                  name.c_str(), iterations.c_str(),
                  Figure("%.1f", Number(m, "baseline_j_per_iteration")).c_str(),
                  Figure("%.1f", Number(m, "perseus_j_per_iteration")).c_str(),
                  Figure("%.2f%%", Number(m, "saving_pct")).c_str(),
                  Figure("%.2f%%", Number(Member(m, "model"), "saving_pct")).c_str(),
                  Figure("%.4f", Number(m, "baseline_time_s_per_iteration")).c_str(),
                  Figure("%.4f", Number(m, "perseus_time_s_per_iteration")).c_str(),
                  Figure("%.2f%%", Number(m, "slowdown_pct")).c_str());
    out += line;
  };
  const json& pipelines = Member(measured, "pipelines");
  if (pipelines.is_array()) {
    for (const json& p : pipelines) {
      row(Text(p, "pipeline", "?"),
          Figure("%.0f", Number(p, "baseline_iterations")) + "/" +
              Figure("%.0f", Number(p, "perseus_iterations")),
          p);
    }
  }
  row("job", "-", measured);
  if (measured.is_object() && measured.contains("note")) {
    out += "\n  note: " + Text(measured, "note") + "\n";
  }
  std::snprintf(line, sizeof(line), "\n  plan mismatches: %s in %s iterations\n",
                Figure("%.0f", Number(report, "plan_mismatches")).c_str(),
                Figure("%.0f", Number(report, "iterations_with_mismatches")).c_str());
  out += line;
  return out;
}

int RunServerReport(const ReportArgs& args) {
  std::string url = args.server;
  while (!url.empty() && url.back() == '/') url.pop_back();
  const size_t scheme = url.find("://");
  const size_t host = scheme == std::string::npos ? 0 : scheme + 3;
  if (url.empty() || url.find('/', host) != std::string::npos) {
    return ReportError(
        Status::InvalidInput("--server must be http://HOST:PORT, got " + args.server));
  }
  httplib::Client client(url);
  if (!client.is_valid()) {
    return ReportError(
        Status::InvalidInput("--server must be http://HOST:PORT, got " + args.server));
  }
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  if (!args.token_file.empty()) {
    auto token = ReadTokenFile(args.token_file);
    if (!token.ok()) return ReportError(token.status());
    client.set_bearer_token_auth(*token);
  }
  const std::string path = "/v1/jobs/" + std::to_string(args.job_id);
  auto job = Get(client, url, path, args.job_id);
  if (!job.ok()) return ReportError(job.status());
  auto report = Get(client, url, path + "/report", args.job_id);
  if (!report.ok()) return ReportError(report.status());

  if (!args.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(args.out_dir, ec);
    const std::string file = (std::filesystem::path(args.out_dir) / "report.html").string();
    Status written = WriteFileAtomically(file, report::RenderJobReportHtml(*job, *report));
    if (!written.ok()) return ReportError(written);
    if (!args.json) std::printf("report written to %s\n", file.c_str());
  }
  if (args.json) {
    std::printf("%s\n", json{{"job", *job}, {"report", *report}}.dump(2).c_str());
  } else if (args.out_dir.empty()) {
    std::fputs(JobTable(*job, *report).c_str(), stdout);
  }
  return 0;
}

int RunReport(ReportArgs args) {
  if (!args.server.empty() || args.job_id >= 0) {
    if (args.server.empty())
      return ReportError(Status::InvalidInput("--job needs --server URL (the coordinator)"));
    if (args.job_id < 0)
      return ReportError(Status::InvalidInput("--server needs --job ID (the job to report on)"));
    return RunServerReport(args);
  }
  if (args.json || !args.token_file.empty()) {
    return ReportError(
        Status::InvalidInput("--json and --token-file are for a job on a server (--server URL "
                             "--job ID)"));
  }
  if (args.out_dir.empty()) {
    return ReportError(Status::InvalidInput(
        "--out DIR is required (or --server URL --job ID for a job on a coordinator)"));
  }
  const bool demo = args.job.profile_path.empty();
  if (demo) {
    args.job = DemoJobSpec();
    if (args.pipelines == 0) args.pipelines = 1536 / 12;  // the paper's global batch of 1536
  }
  auto slowdowns = emulator::ParseSlowdowns(args.slowdowns);
  if (!slowdowns.ok()) return ReportError(slowdowns.status());
  job::JobSpec spec = args.job;
  const int pipelines = args.pipelines > 0 ? args.pipelines : std::max(1, spec.dp);
  spec.dp = 1;
  auto planned = PlanJob(spec, TerminalProgress("planning"));
  if (!planned.ok()) return ReportError(planned.status());
  const planner::Frontier& f = planned->frontier;
  emulator::EmulationOptions eo;
  eo.pipelines = pipelines;
  eo.slowdowns = slowdowns.value();
  eo.methods = {emulator::Method::kAllMax, emulator::Method::kPerseus, emulator::Method::kEnvPipe,
                emulator::Method::kZeusGlobal, emulator::Method::kZeusPerStage};
  std::vector<planner::Figures> fastest;
  auto rows = emulator::Emulate(f, eo, &fastest);
  if (!rows.ok()) return ReportError(rows.status());

  report::ReportInput in;
  in.title = "Perseus report: " + std::filesystem::path(spec.profile_path).filename().string();
  const auto& j = planned->job;
  if (demo) {
    in.facts.push_back(
        "The demo job: the shipped GPT-3 175B A100 profile in the paper's emulation setting "
        "(time x10, energy x10 per GPU: 8 stages of 8 tensor-parallel A100s, 12 "
        "microbatches). Pass --profile for your own job.");
  }
  in.facts.push_back(j.schedule + ", " + std::to_string(j.stages) + " stages x " +
                     std::to_string(j.microbatches) + " microbatches, TP " + std::to_string(j.tp) +
                     "; " + std::to_string(pipelines) +
                     (pipelines == 1 ? " pipeline" : " pipelines") +
                     " in the straggler emulation; blocking power " +
                     job::BlockingPowerText(spec.blocking_power_w, j.tp) + "; " + spec.cost_model +
                     " cost model, time unit " + NumberText(j.unit_time_s) + " s.");
  for (const auto& note : j.notes) in.facts.push_back("Note: " + note);
  for (const std::string& a : emulator::MethodApproximations(eo.methods)) {
    in.facts.push_back("Approximation: " + a);
  }
  in.frontier = &f;
  // The single operating points of EnvPipe and Zeus per-stage (eo.methods[2]
  // and [4]), as the emulation computed them.
  in.baselines.push_back({"EnvPipe", fastest[2]});
  in.baselines.push_back({"Zeus per-stage", fastest[4]});
  in.timeline_point = f.TMinIndex();
  if (args.deadline_s > 0) {
    auto k = f.IndexForDeadline(args.deadline_s);
    if (!k) return ReportError(Status::InvalidInput("--time is faster than T_min"));
    in.timeline_point = *k;
  }
  in.methods = eo.methods;
  in.rows = rows.value();
  in.tp = j.tp;
  // The timeline plan's time, rounded up (a deadline below T_min is an error).
  const std::string deadline =
      NumberText(std::ceil(f.points()[in.timeline_point].time_s * 100) / 100);
  const std::string plan_cmd =
      demo ? "perseus demo --out plans" : "perseus plan <the same options> --out plans";
  in.next_steps = {
      {"Write the frontier and every plan to a directory", plan_cmd},
      {"Print the per-stage frequencies to run for a deadline T (here the timeline's plan)",
       "perseus show-plan plans --time " + deadline},
      {"Run it in a training job: start the coordinator, which plans the job, hands every rank "
       "its frequencies and reacts to stragglers; the ranks connect with the Python package "
       "(README: perseus serve, Python package)",
       "perseus serve --listen 127.0.0.1:8080 --db perseus.db"},
      {"Check the schedule the plan assumes",
       "perseus show-schedule --schedule " + j.schedule + " --stages " + std::to_string(j.stages) +
           " --microbatches " + std::to_string(j.microbatches) + " --svg schedule.svg"}};

  std::error_code ec;
  std::filesystem::create_directories(args.out_dir, ec);
  const std::string path = (std::filesystem::path(args.out_dir) / "report.html").string();
  Status written = WriteFileAtomically(path, report::RenderReportHtml(in));
  if (!written.ok()) return ReportError(written);
  std::printf("report written to %s\n", path.c_str());
  return 0;
}

}  // namespace

void RegisterReport(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app->add_subcommand(
      "report",
      "Write a self-contained HTML report (frontier, plan timeline, savings against straggler "
      "slowdown) to DIR/report.html; without --profile, for the demo job. With --server URL "
      "--job ID: the measured energy and time per iteration of a job on a running `perseus "
      "serve` (baseline at the highest clock against Perseus, per pipeline and for the job), as "
      "a table, --json, or --out DIR");
  cmd->add_option("--out", args->out_dir,
                  "Directory for report.html (required, except with --server, where without it "
                  "a table is printed)");
  cmd->add_option("--server", args->server,
                  "A running `perseus serve`, http://HOST:PORT: report its job --job with "
                  "measured figures; --profile and the plan options are then not used");
  cmd->add_option("--job", args->job_id, "The job's id on --server")->check(CLI::NonNegativeNumber);
  cmd->add_option("--token-file", args->token_file,
                  "File holding the server's bearer token (as `perseus serve --token-file`)");
  cmd->add_flag("--json", args->json,
                "With --server: print {\"job\": GET job, \"report\": GET report} as JSON");
  AddJobOptions(cmd, &args->job);
  cmd->get_option("--profile")->required(false);
  cmd->add_option("--time", args->deadline_s,
                  "Show the timeline of the plan for this deadline, seconds")
      ->check(Above(0, 1e7));
  cmd->add_option("--pipelines", args->pipelines,
                  "Pipelines for the straggler emulation, 1..1000000")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--straggler-slowdown", args->slowdowns,
                  "Slowdowns (a list: 1.1,1.2; or START:STOP:STEP)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = RunReport(*args); });
}

}  // namespace perseus::cli
