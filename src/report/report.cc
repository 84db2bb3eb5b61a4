#include "perseus/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "perseus/emulator/simulator.h"
#include "src/report/html.h"

namespace perseus::report {

namespace {

std::string Format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, a);
  return buf;
}

// "Nice" tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi, int target = 6) {
  const double span = hi - lo > 0 ? hi - lo : 1;
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

// A plot area with axes, ticks and labels; maps data to pixels.
struct Plot {
  double x0, x1, y0, y1;  // data ranges
  double left = 90, top = 20, width = 760, height = 360;
  std::string svg;

  Plot(double ax0, double ax1, double ay0, double ay1, const std::string& xlabel,
       const std::string& ylabel, const char* xfmt, const char* yfmt)
      : x0(ax0), x1(ax1), y0(ay0), y1(ay1) {
    svg +=
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"450\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n";
    svg += "<rect x=\"" + Format("%.1f", left) + "\" y=\"" + Format("%.1f", top) + "\" width=\"" +
           Format("%.1f", width) + "\" height=\"" + Format("%.1f", height) +
           "\" fill=\"none\" stroke=\"#888\"/>\n";
    for (double t : Ticks(x0, x1)) {
      const double x = X(t);
      svg += "<line x1=\"" + Format("%.1f", x) + "\" y1=\"" + Format("%.1f", top + height) +
             "\" x2=\"" + Format("%.1f", x) + "\" y2=\"" + Format("%.1f", top + height + 5) +
             "\" stroke=\"#888\"/><text x=\"" + Format("%.1f", x) + "\" y=\"" +
             Format("%.1f", top + height + 18) + "\" text-anchor=\"middle\">" + Format(xfmt, t) +
             "</text>\n";
    }
    for (double t : Ticks(y0, y1)) {
      const double y = Y(t);
      svg += "<line x1=\"" + Format("%.1f", left - 5) + "\" y1=\"" + Format("%.1f", y) +
             "\" x2=\"" + Format("%.1f", left + width) + "\" y2=\"" + Format("%.1f", y) +
             "\" stroke=\"#eee\"/><text x=\"" + Format("%.1f", left - 8) + "\" y=\"" +
             Format("%.1f", y + 4) + "\" text-anchor=\"end\">" + Format(yfmt, t) + "</text>\n";
    }
    svg += "<text x=\"" + Format("%.1f", left + width / 2) + "\" y=\"" +
           Format("%.1f", top + height + 40) + "\" text-anchor=\"middle\">" + Escape(xlabel) +
           "</text>\n";
    svg += "<text transform=\"translate(18," + Format("%.1f", top + height / 2) +
           ") rotate(-90)\" text-anchor=\"middle\">" + Escape(ylabel) + "</text>\n";
  }
  double X(double v) const { return left + (v - x0) / (x1 - x0) * width; }
  double Y(double v) const { return top + height - (v - y0) / (y1 - y0) * height; }
  void Polyline(const std::vector<std::pair<double, double>>& pts, const std::string& colour) {
    svg += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : pts) svg += Format("%.1f", X(x)) + "," + Format("%.1f", Y(y)) + " ";
    svg += "\"/>\n";
  }
  void Marker(double x, double y, const std::string& colour, const std::string& label) {
    svg += "<circle cx=\"" + Format("%.1f", X(x)) + "\" cy=\"" + Format("%.1f", Y(y)) +
           "\" r=\"5\" fill=\"" + colour + "\"><title>" + Escape(label) + "</title></circle>\n";
    svg += "<text x=\"" + Format("%.1f", X(x) + 8) + "\" y=\"" + Format("%.1f", Y(y) - 8) +
           "\" fill=\"" + colour + "\">" + Escape(label) + "</text>\n";
  }
  std::string Finish() { return svg + "</svg>\n"; }
};

const char* kColours[] = {"#333333", "#e15759", "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"};

std::string FrontierChart(const ReportInput& in) {
  const planner::Frontier& f = *in.frontier;
  std::vector<std::pair<double, double>> pts;
  for (const auto& p : f.points()) pts.push_back({p.time_s, p.energy_j});
  std::sort(pts.begin(), pts.end());
  // At most ~1500 vertices: the chart is 760 px wide.
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
    ey0 = std::min(ey0, g.energy_j);
    ey1 = std::max(ey1, g.energy_j);
  };
  include(f.all_max);
  for (const auto& [name, g] : in.baselines) include(g);
  const double tp = (tx1 - tx0) * 0.05 + 1e-9, ep = (ey1 - ey0) * 0.08 + 1e-9;
  Plot plot(tx0 - tp, tx1 + tp, ey0 - ep, ey1 + ep, "iteration time (s)",
            "energy per iteration, one pipeline (J)", "%.4g", "%.6g");
  plot.Polyline(shown, "#4e79a7");
  const auto& tmin = f.points()[f.TMinIndex()];
  const auto& tstar = f.points()[f.TStarIndex()];
  plot.Marker(f.all_max.time_s, f.all_max.energy_j, "#000000", "all-max");
  plot.Marker(tmin.time_s, tmin.energy_j, "#e15759", "T_min");
  plot.Marker(tstar.time_s, tstar.energy_j, "#9467bd", "T*");
  size_t c = 3;
  for (const auto& [name, g] : in.baselines) {
    plot.Marker(g.time_s, g.energy_j, kColours[c++ % 6], name);
  }
  return plot.Finish();
}

std::string TimelineChart(const ReportInput& in) {
  const planner::Frontier& f = *in.frontier;
  const planner::Problem& problem = f.problem();
  const planner::Dag& dag = *problem.dag;
  const planner::Plan plan = f.PlanAt(in.timeline_point);
  auto sim = emulator::Simulate(problem, plan, {});
  if (!sim.ok()) return "<p>timeline unavailable: " + Escape(sim.status().message()) + "</p>\n";
  const double makespan = sim->figures.time_s;
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
  const double left = 70, top = 20, row = 26, width = 800;
  const int rows = dag.num_gpus();
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"" +
                    Format("%.0f", top + row * rows + 70) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  for (int g = 0; g < rows; ++g) {
    svg += "<text x=\"5\" y=\"" + Format("%.1f", top + row * g + row * 0.65) + "\">GPU " +
           std::to_string(g) + "</text>\n";
  }
  const double eps = 1e-9 * std::max(1.0, makespan);
  for (const auto& e : sim->timeline) {
    const auto& c = dag.node(e.node);
    const double share =
        fmax > fmin ? static_cast<double>(e.frequency_mhz - fmin) / (fmax - fmin) : 1;
    const int red = static_cast<int>(60 + 195 * share),
              blue = static_cast<int>(60 + 195 * (1 - share));
    char colour[16];
    std::snprintf(colour, sizeof(colour), "#%02x50%02x", red, blue);
    const bool critical = e.end_s >= latest[e.node] - eps;
    const double x = left + e.start_s / makespan * width;
    const double w = std::max(0.5, (e.end_s - e.start_s) / makespan * width);
    svg += "<rect x=\"" + Format("%.2f", x) + "\" y=\"" + Format("%.1f", top + row * c.gpu + 2) +
           "\" width=\"" + Format("%.2f", w) + "\" height=\"" + Format("%.1f", row - 4) +
           "\" fill=\"" + colour + "\"" +
           (critical ? " stroke=\"#000\" stroke-width=\"1.5\"" : " stroke=\"#fff\"") + "><title>" +
           Escape(planner::ComputationLabel(c)) + " at " + std::to_string(e.frequency_mhz) +
           " MHz, " + Format("%.4g", e.start_s) + "-" + Format("%.4g", e.end_s) + " s" +
           (critical ? ", critical" : "") + "</title></rect>\n";
  }
  svg += "<text x=\"" + Format("%.0f", left) + "\" y=\"" + Format("%.0f", top + row * rows + 20) +
         "\">time 0 to " + Format("%.4g", makespan) + " s; colour: SM frequency from " +
         std::to_string(fmin) + " MHz (blue) to " + std::to_string(fmax) +
         " MHz (red); black outline: critical path</text>\n";
  return svg + "</svg>\n";
}

std::string SavingsChart(const ReportInput& in) {
  if (in.rows.empty()) return "<p>No emulation rows.</p>\n";
  double x0 = in.rows.front().slowdown, x1 = in.rows.back().slowdown;
  double y0 = 0, y1 = 1;
  for (const auto& r : in.rows) {
    for (const auto& m : r.methods) {
      y0 = std::min(y0, m.saving_pct);
      y1 = std::max(y1, m.saving_pct);
    }
  }
  if (x1 <= x0) x1 = x0 + 0.1;
  Plot plot(x0, x1, y0, y1 * 1.1, "straggler slowdown T'/T_min", "job energy saving vs all-max (%)",
            "%.2f", "%.0f");
  for (size_t k = 0; k < in.methods.size(); ++k) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& r : in.rows) pts.push_back({r.slowdown, r.methods[k].saving_pct});
    const std::string colour = kColours[k % 6];
    plot.Polyline(pts, colour);
    plot.svg += "<text x=\"" + Format("%.1f", plot.left + 10) + "\" y=\"" +
                Format("%.1f", plot.top + 16 + 16.0 * static_cast<double>(k)) + "\" fill=\"" +
                colour + "\">" + Escape(std::string(emulator::MethodName(in.methods[k]))) +
                "</text>\n";
  }
  return plot.Finish();
}

}  // namespace

std::string RenderReportHtml(const ReportInput& in) {
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>" +
      Escape(in.title) +
      "</title>\n<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
      "h2{margin-top:2em}td,th{padding:2px 10px;text-align:right}</style>\n</head>\n<body>\n";
  html += "<h1>" + Escape(in.title) + "</h1>\n";
  for (const auto& fact : in.facts) html += "<p>" + Escape(fact) + "</p>\n";
  const planner::Frontier& f = *in.frontier;
  const auto& tmin = f.points()[f.TMinIndex()];
  const auto& tstar = f.points()[f.TStarIndex()];
  auto saving = [&](double e) { return 100 * (f.all_max.energy_j - e) / f.all_max.energy_j; };
  html += "<table>\n<tr><th></th><th>time (s)</th><th>energy (J)</th><th>saving</th></tr>\n";
  html += "<tr><td>all-max</td><td>" + Format("%.4f", f.all_max.time_s) + "</td><td>" +
          Format("%.1f", f.all_max.energy_j) + "</td><td>-</td></tr>\n";
  html += "<tr><td>T_min</td><td>" + Format("%.4f", tmin.time_s) + "</td><td>" +
          Format("%.1f", tmin.energy_j) + "</td><td>" + Format("%.2f%%", saving(tmin.energy_j)) +
          "</td></tr>\n";
  html += "<tr><td>T*</td><td>" + Format("%.4f", tstar.time_s) + "</td><td>" +
          Format("%.1f", tstar.energy_j) + "</td><td>" + Format("%.2f%%", saving(tstar.energy_j)) +
          "</td></tr>\n</table>\n";
  html += "<h2>Iteration time-energy frontier</h2>\n<p>" + std::to_string(f.size()) +
          " frontier points (realized: measured frequencies, times and energies).</p>\n";
  html += FrontierChart(in);
  html +=
      "<h2>Timeline of the plan at frontier point " + std::to_string(in.timeline_point) + "</h2>\n";
  html += TimelineChart(in);
  html += "<h2>Savings against straggler slowdown</h2>\n";
  html += SavingsChart(in);
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace perseus::report
