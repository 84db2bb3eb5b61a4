// Compares our frontiers with the reference frontiers the Perseus authors'
// planner (ml-energy/lowtime) produced from the shipped profiles:
// 1F1B, 8 stages, M = 12 and 24, unit 1 ms, unscaled, P_blk 83.64 W per GPU.
// Their energies are model energies (exponential fit) plus blocking energy.
//
//   build/bin/compare_reference [--cost-model convex|exponential|both]
//
// Prints a Markdown table: ranges covered, and energies at T_min, at T* and at
// the median reference time, for their frontier, our realized frontier (what
// the measured frequencies really give) and our model frontier.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "perseus/planner/solver.h"

namespace perseus::bench {
namespace {

struct RefPoint {
  double time_s, energy_j;
};

std::vector<RefPoint> ReadReference(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", path.c_str());
    std::exit(1);
  }
  std::vector<RefPoint> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream s(line);
    RefPoint p{};
    char comma = 0;
    if (s >> p.time_s >> comma >> p.energy_j) out.push_back(p);
  }
  std::sort(out.begin(), out.end(),
            [](const RefPoint& a, const RefPoint& b) { return a.time_s < b.time_s; });
  return out;
}

// Reference energy at deadline t: the lowest energy among their points with time <= t.
double RefWithin(const std::vector<RefPoint>& ref, double t) {
  double best = NAN;
  for (const RefPoint& p : ref) {
    if (p.time_s <= t + 1e-9 && !(p.energy_j >= best)) best = p.energy_j;
  }
  return best;
}

// Our model energy at model time t (points are one unit apart).
double ModelAt(const planner::Frontier& f, double t) {
  for (const auto& p : f.points()) {
    if (std::fabs(p.model_time_s - t) < 1e-7) return p.model_energy_j;
  }
  return NAN;
}

double OursWithin(const planner::Frontier& f, double t) {
  auto k = f.IndexForDeadline(t + 1e-9);
  return k ? f.points()[*k].energy_j : NAN;
}

std::string Pct(double ours, double theirs) {
  if (std::isnan(ours) || std::isnan(theirs)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%+.2f%%", 100 * (ours - theirs) / theirs);
  return buf;
}

void Compare(const std::string& model_name, planner::CostModel model) {
  std::printf("\n### Cost model `%s`\n\n", model_name.c_str());
  std::printf(
      "| case | reference range (s) | our realized range (s) | T_min: reference | T_min: ours "
      "(realized) | T*: reference | T*: ours (realized) | median t: reference | median t: ours "
      "realized / model |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const char* model_file : {"gpt3-175b", "bloom"}) {
    planner::Profile profile = LoadShippedProfile(std::string(model_file) + "+a100_sxm_bf16.csv");
    for (int m : {12, 24}) {
      auto ref =
          ReadReference(std::string(PERSEUS_DATA_DIR) + "/reference/lowtime-frontier/a100_sxm/" +
                        model_file + "_bf16_mb" + std::to_string(m) + ".csv");
      planner::PlannerOptions opt;
      opt.unit_time_s = 0.001;
      opt.blocking_power_w = 83.64;
      opt.cost_model = model;
      auto frontier = planner::SolveFrontier(MakeProblem(profile, m, opt));
      if (!frontier.ok()) {
        std::fprintf(stderr, "%s\n", frontier.status().message().c_str());
        std::exit(1);
      }
      const auto& f = frontier.value();
      const auto& tmin = f.points()[f.TMinIndex()];
      const auto& tstar = f.points()[f.TStarIndex()];
      double our_max = 0;
      for (const auto& p : f.points()) our_max = std::max(our_max, p.time_s);
      auto ref_star = *std::min_element(
          ref.begin(), ref.end(),
          [](const RefPoint& a, const RefPoint& b) { return a.energy_j < b.energy_j; });
      const double median = ref[ref.size() / 2].time_s;
      std::printf(
          "| %s M=%d | %.3f–%.3f | %.4f–%.4f (all-max %.4f) | %.3f s: %.1f J | %.4f s: %.1f J "
          "(%s vs reference at %.4f s) | %.3f s: %.1f J | %.4f s: %.1f J (%s) | %.3f s: %.1f J | "
          "%.1f (%s) / %.1f (%s) |\n",
          model_file, m, ref.front().time_s, ref.back().time_s, tmin.time_s, our_max,
          f.all_max.time_s, ref.front().time_s, ref.front().energy_j, tmin.time_s, tmin.energy_j,
          Pct(tmin.energy_j, RefWithin(ref, tmin.time_s)).c_str(), tmin.time_s, ref_star.time_s,
          ref_star.energy_j, tstar.time_s, tstar.energy_j,
          Pct(tstar.energy_j, ref_star.energy_j).c_str(), median, RefWithin(ref, median),
          OursWithin(f, median), Pct(OursWithin(f, median), RefWithin(ref, median)).c_str(),
          ModelAt(f, median), Pct(ModelAt(f, median), RefWithin(ref, median)).c_str());
      // Over every reference time we can also meet: mean and worst difference.
      double sum = 0, worst = -1e9, best = 1e9;
      int n = 0;
      for (const RefPoint& p : ref) {
        double ours = OursWithin(f, p.time_s);
        if (std::isnan(ours)) continue;
        double d = 100 * (ours - RefWithin(ref, p.time_s)) / RefWithin(ref, p.time_s);
        sum += d;
        worst = std::max(worst, d);
        best = std::min(best, d);
        ++n;
      }
      std::fprintf(
          stderr,
          "%s M=%d (%s): %d of %zu reference times met; realized vs reference: mean %+.2f%%, "
          "range %+.2f%% .. %+.2f%%\n",
          model_file, m, model_name.c_str(), n, ref.size(), n ? sum / n : 0.0, best, worst);
    }
  }
}

// Our solver in reference-compatible mode (times floored to units, exponential
// fit, plans unrepaired): its model frontier should reproduce the reference's,
// and its realized figures show what the reference's plans really do.
void CompareReferenceMode() {
  std::printf(
      "\n### Reference-compatible mode (floor rounding, exponential fit, no repair)\n\n"
      "| case | reference T_min | our model T_min | model energy vs reference over common times "
      "| realized figures of the model-T_min plan |\n|---|---|---|---|---|\n");
  for (const char* model_file : {"gpt3-175b", "bloom"}) {
    planner::Profile profile = LoadShippedProfile(std::string(model_file) + "+a100_sxm_bf16.csv");
    for (int m : {12, 24}) {
      auto ref =
          ReadReference(std::string(PERSEUS_DATA_DIR) + "/reference/lowtime-frontier/a100_sxm/" +
                        model_file + "_bf16_mb" + std::to_string(m) + ".csv");
      planner::PlannerOptions opt;
      opt.unit_time_s = 0.001;
      opt.blocking_power_w = 83.64;
      opt.cost_model = planner::CostModel::kExponential;
      opt.round_down = true;
      auto frontier = planner::SolveFrontier(MakeProblem(profile, m, opt));
      if (!frontier.ok()) {
        std::fprintf(stderr, "%s\n", frontier.status().message().c_str());
        std::exit(1);
      }
      const auto& f = frontier.value();
      const auto& last = f.points().back();
      double sum = 0, worst = 0;
      int n = 0;
      for (const RefPoint& p : ref) {
        double ours = ModelAt(f, p.time_s);
        if (std::isnan(ours)) continue;
        double d = 100 * (ours - p.energy_j) / p.energy_j;
        sum += d;
        if (std::fabs(d) > std::fabs(worst)) worst = d;
        ++n;
      }
      std::printf(
          "| %s M=%d | %.3f s: %.1f J | %.3f s: %.1f J | mean %+.3f%%, largest %+.3f%% (%d "
          "times) | %.4f s (all-max %.4f s), %.1f J |\n",
          model_file, m, ref.front().time_s, ref.front().energy_j, last.model_time_s,
          last.model_energy_j, n ? sum / n : 0.0, worst, n, last.time_s, f.all_max.time_s,
          last.energy_j);
    }
  }
}

}  // namespace
}  // namespace perseus::bench

int main(int argc, char** argv) {
  std::string which = "both";
  if (argc == 3 && std::string(argv[1]) == "--cost-model") which = argv[2];
  if (which == "convex" || which == "both")
    perseus::bench::Compare("convex", perseus::planner::CostModel::kConvex);
  if (which == "exponential" || which == "both") {
    perseus::bench::Compare("exponential", perseus::planner::CostModel::kExponential);
  }
  if (which == "both") perseus::bench::CompareReferenceMode();
  return 0;
}
