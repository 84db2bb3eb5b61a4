// The planner ladder (issue #8): solve time, frontier size, peak memory and
// time per point over a fixed ladder of pipeline sizes, for 1F1B and
// interleaved 1F1B (V = 2), at 1 ms and 0.1 ms units, on the GPT-3 175B A100
// profile (stages beyond 8 repeat the shipped ones; interleaved chunks cut
// each stage in two). Every case runs in its own child process, so peak RSS
// is the case's own; a case past --timeout is reported as such. Steps: cuts
// applied; unit steps: units of iteration time swept (what the unit-step
// sweep takes); max flows: minimum cuts computed (in parentheses, those
// found by extending the last cut's source side); T_min polish: the part of
// the solve time spent in the T_min point's PolishPlan; the solve time split
// (SolverStats): timing passes and step lengths / critical networks and
// their cuts / the points' realized figures / the T_min polish / the
// frontier ends' improvement. Case CPU: the
// child's user + system time (loading the profile, building the problem and
// solving), which a loaded machine inflates less than the wall-clock solve
// time.
//
//   build/bin/planner_ladder [--units 1000,100] [--schedules 1f1b,interleaved-1f1b]
//                            [--max-gpus-x-mb N] [--min-gpus-x-mb N]
//                            [--timeout SEC | --cpu-timeout SEC] [--reference]
//                            [--unit-steps] [--every-unit] [--all-points] [--hash]
//                            [--in-process]
//
// --timeout limits each case's wall-clock time, --cpu-timeout its CPU time.
// --in-process runs the cases in this process instead of children, for a
// heap profiler (heaptrack follows no fork); peak RSS and case CPU read 0.
//
// --unit-steps: the unit-step sweep (SolverOptions::unit_steps); --every-unit:
// longest steps, a point per unit (SolverOptions::realize_every_unit);
// --all-points: every point of the sweep (SolverOptions::pareto_only off, so
// no ends' improvement either). --hash: an extra column with the fast
// frontier's hash (every point's figures and every 97th plan), to check that
// a change to the solver leaves its frontier bit for bit the same.
// --reference also runs the reference solver (unit steps, textbook max flow)
// on every case: with --unit-steps or --every-unit its frontier (every
// point's figures and every 97th plan) must hash equal to the fast one's;
// otherwise a child process solves both sweeps with every point kept and
// checks that the fast one's points are the reference's at its step ends
// (figures and plans) and that the reference's model energy is linear in
// time inside every step.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "perseus/job/job.h"
#include "perseus/planner/profile_transforms.h"
#include "perseus/planner/solver.h"

namespace perseus::bench {
namespace {

struct CaseResult {
  bool ok = false;
  double seconds = 0;
  uint64_t points = 0, plan_bytes = 0, computations = 0, hash = 0;
  int64_t steps = 0, unit_steps = 0, max_flows = 0, extended_cuts = 0;
  double timing_s = 0, cuts_s = 0, points_s = 0, polish_s = 0, ends_s = 0;
  char error[200] = {};
};

// How a case is solved.
enum class Mode {
  kFast,       // the options given
  kReference,  // SolverOptions::reference
  kCheck,      // reference and longest steps, every point: step ends checked
};

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof(b));
  return b;
}

// Whether `longest` (every point of the longest-step sweep) is the unit-step
// sweep `unit` at its step ends, with the unit sweep's model cost linear in
// time inside every step.
bool StepEndsOfTheUnitSweep(const planner::Frontier& unit, const planner::Frontier& longest) {
  const planner::Problem& problem = unit.problem();
  const double tau = problem.options.unit_time_s;
  const double stage_blocking = problem.options.blocking_power_w * problem.num_gpus;
  auto units_of = [&](const planner::FrontierPoint& p) {
    return std::llround(p.model_time_s / tau);
  };
  auto cost_of = [&](const planner::FrontierPoint& p) {
    return std::llround((p.model_energy_j - stage_blocking * p.model_time_s) /
                        planner::kCostUnitJoules);
  };
  const auto& u = unit.points();
  const auto& l = longest.points();
  if (u.empty() || l.empty()) return false;
  const int64_t top = units_of(u[0]);
  if (units_of(l[0]) != top || units_of(l.back()) != units_of(u.back())) return false;
  int64_t previous = -1;
  for (size_t j = 0; j < l.size(); ++j) {
    const int64_t k = top - units_of(l[j]);
    if (k <= previous || k >= static_cast<int64_t>(u.size())) return false;
    const auto& a = l[j];
    const auto& b = u[k];
    if (a.model_time_s != b.model_time_s || a.model_energy_j != b.model_energy_j ||
        a.time_s != b.time_s || a.energy_j != b.energy_j) {
      return false;
    }
    if (longest.PlanAt(j) != unit.PlanAt(static_cast<size_t>(k))) return false;
    if (previous >= 0) {
      const int64_t span = k - previous;
      const int64_t c0 = cost_of(u[previous]), c1 = cost_of(u[k]);
      for (int64_t m = previous + 1; m < k; ++m) {
        if (cost_of(u[m]) * span != c0 * (k - m) + c1 * (m - previous)) return false;
      }
    }
    previous = k;
  }
  return previous + 1 == static_cast<int64_t>(u.size());
}

CaseResult RunCase(const std::string& schedule, int stages, int microbatches, int unit_us,
                   Mode mode, const planner::SolverOptions& fast_options) {
  CaseResult r;
  planner::Profile base = LoadShippedProfile("gpt3-175b+a100_sxm_bf16.csv");
  job::JobSpec spec;
  spec.schedule = schedule;
  spec.stages = stages;
  spec.microbatches = microbatches;
  spec.virtual_stages = schedule == "interleaved-1f1b" ? 2 : 1;
  spec.blocking_power_w = 83.64;
  spec.unit_time_s = unit_us * 1e-6;
  auto prepared = job::PrepareJob(spec, planner::RepeatStages(base, stages));
  if (!prepared.ok()) {
    std::snprintf(r.error, sizeof(r.error), "%s", prepared.status().message().c_str());
    return r;
  }
  planner::SolverOptions options = fast_options;
  if (mode != Mode::kFast) {
    options = {};
    options.reference = true;
  }
  if (mode == Mode::kCheck) options.pareto_only = false;
  planner::SolverStats stats;
  options.stats = &stats;
  auto start = std::chrono::steady_clock::now();
  auto frontier = planner::SolveFrontier(prepared->problem, {}, options);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!frontier.ok()) {
    std::snprintf(r.error, sizeof(r.error), "%s", frontier.status().message().c_str());
    return r;
  }
  r.ok = true;
  r.points = frontier->size();
  r.plan_bytes = frontier->PlanStorageBytes();
  r.computations = static_cast<uint64_t>(prepared->problem->dag->num_nodes());
  r.steps = stats.steps;
  r.unit_steps = stats.unit_steps;
  r.max_flows = stats.max_flows;
  r.timing_s = stats.timing_s;
  r.cuts_s = stats.cuts_s;
  r.points_s = stats.points_s;
  r.polish_s = stats.polish_s;
  r.ends_s = stats.ends_s;
  r.extended_cuts = stats.extended_cuts;
  if (mode == Mode::kCheck) {
    planner::SolverOptions longest_options;
    longest_options.pareto_only = false;
    auto longest = planner::SolveFrontier(prepared->problem, {}, longest_options);
    r.hash = longest.ok() && StepEndsOfTheUnitSweep(*frontier, *longest) ? 1 : 0;
    return r;
  }
  uint64_t h = 0;
  for (size_t k = 0; k < frontier->size(); ++k) {
    const auto& p = frontier->points()[k];
    for (double d : {p.time_s, p.energy_j, p.model_time_s, p.model_energy_j}) h = Mix(h, Bits(d));
    if (k % 97 == 0 || k + 1 == frontier->size()) {
      for (int o : frontier->PlanAt(k)) h = Mix(h, static_cast<uint64_t>(o));
    }
  }
  r.hash = h;
  return r;
}

// --in-process: run every case in this process (heaptrack, valgrind).
bool g_in_process = false;

// Runs a case in a child process; returns its result and peak RSS (KiB).
CaseResult RunInChild(const std::string& schedule, int stages, int microbatches, int unit_us,
                      Mode mode, const planner::SolverOptions& options, int timeout_s,
                      long* peak_kib, double* cpu_s, bool* timed_out) {
  if (g_in_process) {  // for heap profilers; no peak RSS, CPU time or timeout
    *peak_kib = 0;
    *cpu_s = 0;
    *timed_out = false;
    return RunCase(schedule, stages, microbatches, unit_us, mode, options);
  }
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (timeout_s > 0) {
      alarm(static_cast<unsigned>(timeout_s));
    } else {  // a limit on CPU time (a loaded machine does not stretch it)
      struct rlimit limit {};
      limit.rlim_cur = static_cast<rlim_t>(-timeout_s);
      limit.rlim_max = static_cast<rlim_t>(-timeout_s) + 5;
      setrlimit(RLIMIT_CPU, &limit);
    }
    CaseResult r = RunCase(schedule, stages, microbatches, unit_us, mode, options);
    ssize_t written = write(fds[1], &r, sizeof(r));
    _exit(written == static_cast<ssize_t>(sizeof(r)) ? 0 : 1);
  }
  close(fds[1]);
  CaseResult r;
  ssize_t got = read(fds[0], &r, sizeof(r));
  close(fds[0]);
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  *peak_kib = usage.ru_maxrss;
  *cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  *timed_out = WIFSIGNALED(status) && (WTERMSIG(status) == SIGALRM || WTERMSIG(status) == SIGXCPU ||
                                       WTERMSIG(status) == SIGKILL);
  if (got != static_cast<ssize_t>(sizeof(r))) r = CaseResult{};
  return r;
}

std::vector<int> ParseList(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return out;
}

}  // namespace
}  // namespace perseus::bench

int main(int argc, char** argv) {
  using namespace perseus::bench;
  std::vector<int> units = {1000, 100};
  std::vector<std::string> schedules = {"1f1b", "interleaved-1f1b"};
  long max_size = 64L * 512, min_size = 0;
  int timeout_s = 1800;
  bool reference = false, print_hash = false;
  perseus::planner::SolverOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--units" && i + 1 < argc) {
      units = ParseList(argv[++i]);
    } else if (a == "--schedules" && i + 1 < argc) {
      schedules.clear();
      std::string list = argv[++i];
      for (size_t p = 0; p <= list.size();) {
        size_t c = list.find(',', p);
        if (c == std::string::npos) c = list.size();
        schedules.push_back(list.substr(p, c - p));
        p = c + 1;
      }
    } else if (a == "--max-gpus-x-mb" && i + 1 < argc) {
      max_size = std::atol(argv[++i]);
    } else if (a == "--timeout" && i + 1 < argc) {
      timeout_s = std::atoi(argv[++i]);
    } else if (a == "--cpu-timeout" && i + 1 < argc) {
      timeout_s = -std::atoi(argv[++i]);
    } else if (a == "--min-gpus-x-mb" && i + 1 < argc) {
      min_size = std::atol(argv[++i]);
    } else if (a == "--reference") {
      reference = true;
    } else if (a == "--unit-steps") {
      options.unit_steps = true;
    } else if (a == "--every-unit") {
      options.realize_every_unit = true;
    } else if (a == "--all-points") {
      options.pareto_only = false;
    } else if (a == "--in-process") {
      g_in_process = true;
    } else if (a == "--hash") {
      print_hash = true;
    } else {
      std::fprintf(stderr,
                   "usage: planner_ladder [--units 1000,100] [--schedules 1f1b,interleaved-1f1b] "
                   "[--max-gpus-x-mb N] [--min-gpus-x-mb N] [--timeout SEC | --cpu-timeout SEC] "
                   "[--reference] "
                   "[--unit-steps] [--every-unit] [--all-points] [--hash] [--in-process]\n");
      return 2;
    }
  }
  const int ladder[][2] = {{4, 8}, {8, 32}, {8, 96}, {16, 128}, {32, 256}, {64, 512}};
  // Without per-unit points the reference's frontier differs; its step ends are checked.
  const bool same_points = options.unit_steps || options.realize_every_unit;
  std::printf(
      "| schedule | S x M | unit | computations | steps | unit steps | max flows | points | solve "
      "(s) | timing / cuts / points / T_min polish / ends (s) | case CPU (s) | per point (us) | "
      "peak RSS (MB) | plans "
      "(kB) "
      "|%s%s\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|%s%s\n",
      print_hash ? " hash |" : "",
      reference
          ? (same_points ? " reference (s) | same frontier |" : " reference (s) | step ends |")
          : "",
      print_hash ? "---|" : "", reference ? "---|---|" : "");
  for (const std::string& schedule : schedules) {
    for (int unit : units) {
      for (const auto& sm : ladder) {
        const long size = static_cast<long>(sm[0]) * sm[1];
        if (size > max_size || size < min_size) continue;
        long peak = 0;
        double cpu = 0;
        bool timed_out = false;
        CaseResult r = RunInChild(schedule, sm[0], sm[1], unit, Mode::kFast, options, timeout_s,
                                  &peak, &cpu, &timed_out);
        std::printf("| %s | %d x %d | %g ms | ", schedule.c_str(), sm[0], sm[1], unit / 1000.0);
        if (!r.ok) {
          std::printf("%s |\n", timed_out ? "timed out" : r.error);
          std::fflush(stdout);
          continue;
        }
        std::printf(
            "%llu | %lld | %lld | %lld (%lld) | %llu | %.3f | %.2f / %.2f / %.2f / %.2f / %.2f | "
            "%.2f | "
            "%.1f "
            "| %.1f | %.1f |",
            static_cast<unsigned long long>(r.computations), static_cast<long long>(r.steps),
            static_cast<long long>(r.unit_steps), static_cast<long long>(r.max_flows),
            static_cast<long long>(r.extended_cuts), static_cast<unsigned long long>(r.points),
            r.seconds, r.timing_s, r.cuts_s, r.points_s, r.polish_s, r.ends_s, cpu,
            1e6 * r.seconds / static_cast<double>(r.points), static_cast<double>(peak) / 1024.0,
            static_cast<double>(r.plan_bytes) / 1024.0);
        if (print_hash) std::printf(" %016llx |", static_cast<unsigned long long>(r.hash));
        if (reference) {
          long ref_peak = 0;
          double ref_cpu = 0;
          bool ref_timeout = false;
          CaseResult ref = RunInChild(schedule, sm[0], sm[1], unit,
                                      same_points ? Mode::kReference : Mode::kCheck, options,
                                      timeout_s, &ref_peak, &ref_cpu, &ref_timeout);
          if (ref.ok) {
            const bool same = same_points ? ref.hash == r.hash : ref.hash == 1;
            std::printf(" %.3f | %s |", ref.seconds, same ? "yes" : "NO");
          } else {
            std::printf(" %s | - |", ref_timeout ? "timed out" : "failed");
          }
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
