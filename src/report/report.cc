#include "perseus/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "perseus/common/html_escape.h"
#include "perseus/common/number_text.h"
#include "perseus/emulator/simulator.h"
#include "perseus/schedules/render.h"
#include "src/report/charts.h"

namespace perseus::report {

namespace {

using schedules::LabelWidth;

const char* kColours[] = {"#333333", "#e15759", "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"};

// Energy shown in J, kJ or MJ, whichever keeps the numbers short.
struct EnergyUnit {
  double divisor = 1;
  const char* name = "J";
};

EnergyUnit UnitFor(double joules) {
  if (std::fabs(joules) >= 1e6) return {1e6, "MJ"};
  if (std::fabs(joules) >= 1e3) return {1e3, "kJ"};
  return {1, "J"};
}

std::string EnergyText(double joules, const EnergyUnit& u) {
  return Format("%.5g", joules / u.divisor) + " " + u.name;
}

std::string FrontierChart(const ReportInput& in, const EnergyUnit& unit) {
  const planner::Frontier& f = *in.frontier;
  std::vector<std::pair<double, double>> pts;
  for (const auto& p : f.points()) pts.push_back({p.time_s, p.energy_j / unit.divisor});
  std::sort(pts.begin(), pts.end());
  // At most ~1500 vertices: the chart is 700 px wide.
  std::vector<std::pair<double, double>> shown;
  const size_t stride = std::max<size_t>(1, pts.size() / 1500);
  for (size_t k = 0; k < pts.size(); k += stride) shown.push_back(pts[k]);
  if (!pts.empty()) shown.push_back(pts.back());
  double tx0 = pts.front().first, tx1 = pts.back().first;
  double ey0 = pts.front().second, ey1 = pts.front().second;
  for (const auto& [t, e] : pts) {
    ey0 = std::min(ey0, e);
    ey1 = std::max(ey1, e);
  }
  auto include = [&](const planner::Figures& g) {
    tx0 = std::min(tx0, g.time_s);
    tx1 = std::max(tx1, g.time_s);
    ey0 = std::min(ey0, g.energy_j / unit.divisor);
    ey1 = std::max(ey1, g.energy_j / unit.divisor);
  };
  include(f.all_max);
  for (const auto& [name, g] : in.baselines) include(g);
  const double tp = (tx1 - tx0) * 0.06 + 1e-9, ep = (ey1 - ey0) * 0.1 + 1e-9;
  Plot plot(tx0 - tp, tx1 + tp * 2, ey0 - ep, ey1 + ep, "iteration time (s)",
            std::string("energy per iteration, one pipeline (") + unit.name + ")");
  plot.Polyline(shown, "#4e79a7");
  plot.LegendLine("#4e79a7", "frontier (" + std::to_string(f.size()) + " plans)", false);
  const auto& tmin = f.points()[f.TMinIndex()];
  const auto& tstar = f.points()[f.TStarIndex()];
  plot.Marker(f.all_max.time_s, f.all_max.energy_j / unit.divisor, "#000000", "all-max");
  plot.Marker(tmin.time_s, tmin.energy_j / unit.divisor, "#e15759", "T_min");
  plot.Marker(tstar.time_s, tstar.energy_j / unit.divisor, "#9467bd", "T*");
  size_t c = 3;
  for (const auto& [name, g] : in.baselines) {
    plot.Marker(g.time_s, g.energy_j / unit.divisor, kColours[c++ % 6], name);
  }
  return plot.Finish();
}

// Blue (lowest SM frequency of the plan) to red (highest).
std::string FrequencyColour(double share) {
  const int lo[3] = {0x3b, 0x4c, 0xc0}, hi[3] = {0xb4, 0x04, 0x26};
  char colour[16];
  auto mix = [&](int k) { return static_cast<int>(std::lround(lo[k] + (hi[k] - lo[k]) * share)); };
  std::snprintf(colour, sizeof(colour), "#%02x%02x%02x", mix(0), mix(1), mix(2));
  return colour;
}

std::string GpuRange(int stage, int tp) {
  if (tp <= 1) return "stage " + std::to_string(stage) + " (GPU " + std::to_string(stage) + ")";
  return "stage " + std::to_string(stage) + " (GPUs " + std::to_string(stage * tp) + "\u2013" +
         std::to_string(stage * tp + tp - 1) + ")";
}

std::string TimelineName(const ReportInput& in) {
  const planner::Frontier& f = *in.frontier;
  if (in.timeline_point == f.TMinIndex()) return "T_min plan";
  if (in.timeline_point == f.TStarIndex()) return "T* plan";
  return "Plan for a deadline of " + NumberText(f.points()[in.timeline_point].time_s) + " s";
}

std::string TimelineChart(const ReportInput& in, double* makespan_out) {
  const planner::Frontier& f = *in.frontier;
  const planner::Problem& problem = f.problem();
  const planner::Dag& dag = *problem.dag;
  const planner::Plan plan = f.PlanAt(in.timeline_point);
  auto sim = emulator::Simulate(problem, plan, {});
  if (!sim.ok()) {
    return "<p>timeline unavailable: " + HtmlEscape(sim.status().message()) + "</p>\n";
  }
  const double makespan = sim->figures.time_s;
  *makespan_out = makespan;
  // Critical computations: no slack against the makespan.
  const int n = dag.num_nodes();
  std::vector<double> latest(n, makespan);
  const auto& topo = dag.topological_order();
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    for (int v : dag.successors(*it)) {
      const double duration = sim->timeline[v].end_s - sim->timeline[v].start_s;
      latest[*it] = std::min(latest[*it], latest[v] - duration);
    }
  }
  int fmin = 1 << 30, fmax = 0;
  for (const auto& e : sim->timeline) {
    fmin = std::min(fmin, e.frequency_mhz);
    fmax = std::max(fmax, e.frequency_mhz);
  }
  schedules::TimelineSpec spec;
  spec.width = 760;
  for (int g = 0; g < dag.num_gpus(); ++g) spec.row_labels.push_back(GpuRange(g, in.tp));
  const bool chunked = schedules::HasChunks(dag);
  const double eps = 1e-9 * std::max(1.0, makespan);
  for (const auto& e : sim->timeline) {
    const auto& c = dag.node(e.node);
    const double share =
        fmax > fmin ? static_cast<double>(e.frequency_mhz - fmin) / (fmax - fmin) : 1;
    const bool critical = e.end_s >= latest[e.node] - eps;
    const bool backward = c.instruction != planner::Instruction::kForward;
    spec.boxes.push_back({c.gpu, e.start_s, e.end_s, FrequencyColour(share), backward, critical,
                          schedules::BoxLabel(c, dag.num_gpus(), chunked),
                          planner::ComputationLabel(c) + " at " + std::to_string(e.frequency_mhz) +
                              " MHz, " + NumberText(e.start_s) + "\u2013" + NumberText(e.end_s) +
                              " s" + (critical ? ", critical" : "")});
  }
  spec.end = makespan;
  spec.axis_label = "time within the iteration (s)";
  const std::string mid = FrequencyColour(0.5);
  spec.legend = {{mid, false, false, "forward (plain)"},
                 {mid, true, false, "backward (hatched)"},
                 {"#dddddd", false, true, "critical path (black outline)"}};
  spec.scale_label = "colour: SM frequency";
  spec.scale_low = std::to_string(fmin) + " MHz";
  spec.scale_high = std::to_string(fmax) + " MHz";
  spec.scale_low_colour = FrequencyColour(0);
  spec.scale_high_colour = FrequencyColour(1);
  spec.notes.push_back(std::string("box label: F or B and the microbatch") +
                       (chunked ? ", cN the rank's model chunk" : "") +
                       "; hover a box for its frequency and times");
  return schedules::RenderTimelineSvg(spec);
}

std::string SavingsChart(const ReportInput& in, std::vector<std::string>* flags) {
  if (in.rows.empty()) return "<p>No emulation rows.</p>\n";
  double x0 = in.rows.front().slowdown, x1 = in.rows.back().slowdown;
  double y0 = 0, y1 = 0;
  for (const auto& r : in.rows) {
    for (const auto& m : r.methods) {
      y0 = std::min(y0, m.saving_pct);
      y1 = std::max(y1, m.saving_pct);
    }
  }
  if (x1 <= x0) x1 = x0 + 0.1;
  // Room below 0 %, so that all-max's line is not on the axis.
  const double pad = std::max(1.0, (y1 - y0) * 0.08);
  Plot plot(x0, x1, y0 - pad, y1 + pad, "straggler slowdown T'/T_min",
            "job energy saving vs all-max (%)");
  size_t all_max = in.methods.size();
  for (size_t k = 0; k < in.methods.size(); ++k) {
    if (in.methods[k] == emulator::Method::kAllMax) all_max = k;
  }
  for (size_t k = 0; k < in.methods.size(); ++k) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& r : in.rows) pts.push_back({r.slowdown, r.methods[k].saving_pct});
    const bool is_all_max = k == all_max;
    const std::string colour = is_all_max ? "#000000" : kColours[k % 6];
    plot.Polyline(pts, colour, is_all_max);
    std::string name(emulator::MethodName(in.methods[k]));
    // A method whose job iteration is slower than all-max's at some slowdown.
    std::vector<double> slower;
    if (all_max < in.methods.size() && !is_all_max) {
      for (const auto& r : in.rows) {
        const double limit = r.methods[all_max].time_s;
        if (r.methods[k].time_s > limit * (1 + 1e-9) + 1e-12) {
          slower.push_back(r.slowdown);
          plot.Flag(r.slowdown, r.methods[k].saving_pct);
        }
      }
    }
    if (!slower.empty()) {
      const std::string where =
          slower.size() == in.rows.size()
              ? "at every slowdown"
              : "at slowdown " + NumberText(slower.front()) +
                    (slower.size() > 1 ? "\u2013" + NumberText(slower.back()) : "");
      flags->push_back(name + " is slower than all-max " + where);
      name += " \u26a0 slower than all-max";
    }
    if (is_all_max) name += " (0 %, the reference)";
    plot.LegendLine(colour, name, is_all_max);
  }
  if (!flags->empty()) plot.LegendFlag("\u26a0 = iteration slower than all-max");
  return plot.Finish();
}

}  // namespace

std::string RenderReportHtml(const ReportInput& in) {
  const planner::Frontier& f = *in.frontier;
  const auto& tmin = f.points()[f.TMinIndex()];
  const auto& tstar = f.points()[f.TStarIndex()];
  const EnergyUnit unit = UnitFor(f.all_max.energy_j);
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>" +
      HtmlEscape(in.title) + "</title>\n<style>" + std::string(kPageStyle) +
      "</style>\n</head>\n<body>\n";
  html += "<h1>" + HtmlEscape(in.title) + "</h1>\n";
  for (const auto& fact : in.facts) html += "<p>" + HtmlEscape(fact) + "</p>\n";
  auto saving = [&](double e) { return 100 * (f.all_max.energy_j - e) / f.all_max.energy_j; };
  html +=
      "<table>\n<tr><th></th><th>iteration time</th><th>energy per iteration</th>"
      "<th>saving vs all-max</th></tr>\n";
  auto row = [&](const char* name, double t, double e, bool reference) {
    html += std::string("<tr><td>") + name + "</td><td>" + NumberText(t) + " s</td><td>" +
            EnergyText(e, unit) + "</td><td>" +
            (reference ? std::string("\u2014") : Format("%.2f %%", saving(e))) + "</td></tr>\n";
  };
  row("all-max (every GPU at the highest clock)", f.all_max.time_s, f.all_max.energy_j, true);
  row("T_min (fastest plan)", tmin.time_s, tmin.energy_j, false);
  row("T* (least energy)", tstar.time_s, tstar.energy_j, false);
  html += "</table>\n";

  html += "<h2 id=\"frontier\">Iteration time\u2013energy frontier</h2>\n<p>" +
          std::to_string(f.size()) +
          " plans, each the least energy for its iteration time (realized: measured "
          "frequencies, times and energies).</p>\n";
  html += FrontierChart(in, unit);
  double makespan = 0;
  const std::string timeline = TimelineChart(in, &makespan);
  html += "<h2 id=\"timeline\">" + HtmlEscape(TimelineName(in)) + ": iteration timeline, " +
          NumberText(makespan) + " s</h2>\n";
  html += timeline;
  html += "<h2 id=\"straggler\">Savings against straggler slowdown</h2>\n";
  std::vector<std::string> flags;
  const std::string savings = SavingsChart(in, &flags);
  html +=
      "<p>One pipeline is slowed down by T'/T_min; the other pipelines run each method's plan "
      "for the straggler's iteration time.</p>\n";
  html += savings;
  for (const std::string& flag : flags) {
    html += "<p class=\"flag\">\u26a0 " + HtmlEscape(flag) + ".</p>\n";
  }
  if (!in.next_steps.empty()) {
    html += "<h2 id=\"next\">Next steps</h2>\n<ul>\n";
    for (const auto& [what, command] : in.next_steps) {
      html += "<li>" + HtmlEscape(what) +
              (command.empty() ? "" : ": <code>" + HtmlEscape(command) + "</code>") + "</li>\n";
    }
    html += "</ul>\n";
  }
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace perseus::report
