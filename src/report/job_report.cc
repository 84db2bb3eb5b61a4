// The HTML report of a job on a coordinator (`perseus report --server`): the
// measured energy and time per iteration, baseline against Perseus, from the
// bodies of GET /v1/jobs/ID and GET /v1/jobs/ID/report. Everything optional
// in those bodies may be absent or null: it shows as an em dash.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "perseus/common/html_escape.h"
#include "perseus/job/job.h"
#include "perseus/report/json_fields.h"
#include "perseus/report/report.h"
#include "perseus/schedules/render.h"
#include "src/report/charts.h"

namespace perseus::report {
namespace {

using nlohmann::json;

const char kDash[] = "\u2014";  // em dash: a figure the server did not give

using report::Member;
using report::Number;

std::string Text(const json& obj, const char* key, const std::string& otherwise = kDash) {
  return TextOr(obj, key, otherwise);
}

std::string Format(const char* fmt, std::optional<double> v) { return FigureOr(fmt, v, kDash); }

std::string Iterations(const json& pipeline) {
  auto b = Number(pipeline, "baseline_iterations");
  auto p = Number(pipeline, "perseus_iterations");
  return Format("%.0f", b) + " / " + Format("%.0f", p);
}

struct Row {
  std::string name, iterations;
  std::optional<double> base_j, perseus_j, saving, model_saving, base_s, perseus_s, slowdown;
};

Row MeasuredRow(const std::string& name, const std::string& iterations, const json& m) {
  return {name,
          iterations,
          Number(m, "baseline_j_per_iteration"),
          Number(m, "perseus_j_per_iteration"),
          Number(m, "saving_pct"),
          Number(Member(m, "model"), "saving_pct"),
          Number(m, "baseline_time_s_per_iteration"),
          Number(m, "perseus_time_s_per_iteration"),
          Number(m, "slowdown_pct")};
}

// Two bars per row, baseline (grey) over Perseus (blue), on one energy scale.
std::string EnergyBars(const std::vector<Row>& rows) {
  double top = 0;
  for (const Row& r : rows) top = std::max({top, r.base_j.value_or(0), r.perseus_j.value_or(0)});
  if (top <= 0) return "<p>No measured energy yet.</p>\n";
  const double left = 90, width = 640, bar = 12, gap = 14;
  const double bars_end = 22 + static_cast<double>(rows.size()) * (2 * bar + gap);
  const double height = bars_end + 26;
  // The scale: nice ticks from 0 J, as the report's charts (at most to top).
  const std::vector<double> ticks = schedules::NiceTicks(0, top, 6);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : top;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"" +
                    Format("%.0f", height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<text x=\"" + Format("%.0f", left) +
         "\" y=\"12\"><tspan fill=\"#999999\">&#9632; baseline (highest clock)</tspan> "
         "<tspan fill=\"#4e79a7\">&#9632; Perseus</tspan>, J per iteration</text>\n";
  for (double t : ticks) {
    const double x = left + t / top * width;
    svg += "<line class=\"tick\" x1=\"" + Format("%.1f", x) + "\" y1=\"18\" x2=\"" +
           Format("%.1f", x) + "\" y2=\"" + Format("%.1f", bars_end) +
           "\" stroke=\"#e4e4e4\"/><text class=\"tick-label\" x=\"" + Format("%.1f", x) +
           "\" y=\"" + Format("%.1f", bars_end + 14) + "\" text-anchor=\"middle\">" +
           schedules::TickText(t, step) + "</text>\n";
  }
  double y = 22;
  for (const Row& r : rows) {
    svg += "<text x=\"5\" y=\"" + Format("%.1f", y + bar + 4) + "\">" + HtmlEscape(r.name) +
           "</text>\n";
    const std::pair<std::optional<double>, const char*> bars[] = {{r.base_j, "#999999"},
                                                                  {r.perseus_j, "#4e79a7"}};
    for (const auto& [value, colour] : bars) {
      const double w = value ? std::max(0.5, *value / top * width) : 0;
      svg += "<rect x=\"" + Format("%.1f", left) + "\" y=\"" + Format("%.1f", y) + "\" width=\"" +
             Format("%.1f", w) + "\" height=\"" + Format("%.1f", bar - 1) + "\" fill=\"" + colour +
             "\"/><text x=\"" + Format("%.1f", left + w + 6) + "\" y=\"" +
             Format("%.1f", y + bar - 2) + "\">" + Format("%.1f J", value) + "</text>\n";
      y += bar;
    }
    y += gap;
  }
  return svg + "</svg>\n";
}

}  // namespace

std::string RenderJobReportHtml(const json& job, const json& report) {
  const json& config = Member(job, "config");
  const json& measured = Member(report, "measured");
  std::string id = Text(job, "job_id", Text(report, "job_id"));
  const std::string title = "Perseus job " + id + ": " + Text(config, "name", "(unnamed)");
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>" +
      HtmlEscape(title) + "</title>\n<style>" + std::string(kPageStyle) +
      "</style>\n</head>\n<body>\n";
  html += "<h1>" + HtmlEscape(title) + "</h1>\n";

  // The job: state, shape, blocking power, plan.
  std::string state = "State: " + Text(job, "state");
  const std::string now = Text(job, "state");
  if (auto progress = Number(job, "progress");
      progress && (now == "planning" || now == "profiling"))
    state += Format(" (%.0f%%)", *progress * 100);
  if (job.is_object() && job.contains("reason")) state += "; " + Text(job, "reason");
  html += "<p>" + HtmlEscape(state) + ".</p>\n";
  html += "<p>" +
          HtmlEscape(Text(config, "schedule") + ", " + Text(config, "stages") + " stages x " +
                     Text(config, "microbatches") + " microbatches, TP " + Text(config, "tp") +
                     " x DP " + Text(config, "dp")) +
          ".</p>\n";
  const json& blocking = Member(job, "blocking_power");
  auto w = Number(blocking, "w");
  auto tp = Number(config, "tp");
  html += "<p>Blocking power: " +
          (w ? HtmlEscape(job::BlockingPowerText(*w, tp ? static_cast<int>(*tp) : 1)) + ", from " +
                   HtmlEscape(Text(blocking, "source"))
             : std::string(kDash)) +
          ".</p>\n";

  // The headline: the measured saving and slowdown of the job.
  const Row total = MeasuredRow("job", "", measured);
  html += "<p class=\"big\">Measured saving: <b>" + Format("%.2f%%", total.saving) +
          "</b> of energy per iteration, slowdown " + Format("%.2f%%", total.slowdown) +
          " (the model's saving: " + Format("%.2f%%", total.model_saving) + ").</p>\n";
  if (measured.is_object() && measured.contains("note")) {
    html += "<p>Note: " + HtmlEscape(Text(measured, "note")) + ".</p>\n";
  }

  // Per pipeline and for the job.
  std::vector<Row> rows;
  const json& pipelines = Member(measured, "pipelines");
  if (pipelines.is_array()) {
    for (const json& p : pipelines) {
      rows.push_back(MeasuredRow("pipeline " + Text(p, "pipeline", "?"), Iterations(p), p));
    }
  }
  rows.push_back(total);
  html += "<h2>Measured energy and time per iteration</h2>\n";
  html +=
      "<p>Baseline: iterations every rank of a pipeline reported as phase <i>baseline</i> (at the "
      "highest clock); Perseus: as phase <i>planned</i>. A pipeline's energy is the sum over its "
      "ranks, its time the slowest rank's; the job's energy is the sum over pipelines, its time "
      "the slowest pipeline's. The model's saving is the plan's own figure against all GPUs at "
      "the highest clock.</p>\n";
  html +=
      "<table>\n<tr><th></th><th>iterations (baseline / Perseus)</th><th>baseline J/iter</th>"
      "<th>Perseus J/iter</th><th>saving (measured)</th><th>saving (model)</th>"
      "<th>baseline s/iter</th><th>Perseus s/iter</th><th>slowdown</th></tr>\n";
  for (const Row& r : rows) {
    const bool job_row = &r == &rows.back();
    html += std::string("<tr>") + (job_row ? "<td><b>" : "<td>") + HtmlEscape(r.name) +
            (job_row ? "</b>" : "") + "</td><td>" + (r.iterations.empty() ? kDash : r.iterations) +
            "</td><td>" + Format("%.1f", r.base_j) + "</td><td>" + Format("%.1f", r.perseus_j) +
            "</td><td>" + Format("%.2f%%", r.saving) + "</td><td>" +
            Format("%.2f%%", r.model_saving) + "</td><td>" + Format("%.4f", r.base_s) +
            "</td><td>" + Format("%.4f", r.perseus_s) + "</td><td>" + Format("%.2f%%", r.slowdown) +
            "</td></tr>\n";
  }
  html += "</table>\n";
  html += EnergyBars(rows);

  // What the ranks reported, and the plan's figures.
  html += "<h2>Reports</h2>\n<table>\n";
  auto fact = [&html](const std::string& name, const std::string& value) {
    html += "<tr><td>" + HtmlEscape(name) + "</td><td>" + HtmlEscape(value) + "</td></tr>\n";
  };
  fact("iteration reports", Format("%.0f", Number(report, "reports")));
  fact("iterations", Format("%.0f", Number(report, "iterations")));
  fact("reported energy (J)", Format("%.1f", Number(report, "reported_energy_j")));
  fact("mean rank iteration time (s)",
       Format("%.4f", Number(report, "mean_rank_iteration_time_s")));
  fact("plan mismatches", Format("%.0f", Number(report, "plan_mismatches")) + " in " +
                              Format("%.0f", Number(report, "iterations_with_mismatches")) +
                              " iterations");
  fact("planned energy per iteration (J)",
       Format("%.1f", Number(report, "planned_energy_per_iteration_j")));
  fact("all-max energy per iteration (J)",
       Format("%.1f", Number(report, "all_max_energy_per_iteration_j")));
  fact("planned saving", Format("%.2f%%", Number(report, "planned_saving_pct")));
  fact("report coverage", Format("%.1f%%", [&]() -> std::optional<double> {
         auto c = Number(report, "report_coverage");
         return c ? std::optional<double>(*c * 100) : std::nullopt;
       }()));
  fact("estimated saving (J)", Format("%.1f", Number(report, "estimated_saving_j")));
  html += "</table>\n";

  const json& frontier = Member(job, "frontier");
  if (frontier.is_object()) {
    html += "<h2>Plan</h2>\n<p>" + Format("%.0f", Number(frontier, "points")) +
            " frontier points, solved in " + Format("%.2f", Number(frontier, "solve_seconds")) +
            " s; T_min " + Format("%.4f", Number(frontier, "t_min_s")) + " s at " +
            Format("%.1f", Number(frontier, "t_min_energy_j")) + " J, all-max " +
            Format("%.4f", Number(frontier, "all_max_time_s")) + " s at " +
            Format("%.1f", Number(frontier, "all_max_energy_j")) + " J (one pipeline).</p>\n";
  }
  const json& plans = Member(job, "pipelines");
  if (plans.is_array() && !plans.empty()) {
    html +=
        "<table>\n<tr><th>pipeline</th><th>plan version</th><th>target time (s)</th>"
        "<th>straggler</th></tr>\n";
    for (const json& p : plans) {
      const json& straggler = Member(p, "straggler");
      html += "<tr><td>" + HtmlEscape(Text(p, "pipeline")) + "</td><td>" +
              HtmlEscape(Text(p, "version")) + "</td><td>" +
              Format("%.4f", Number(p, "target_time_s")) + "</td><td>" +
              (straggler.is_boolean() ? (straggler.get<bool>() ? "yes" : "no") : kDash) +
              "</td></tr>\n";
    }
    html += "</table>\n";
  }
  const json& stragglers = Member(job, "stragglers");
  if (stragglers.is_array() && !stragglers.empty()) {
    html +=
        "<h2>Stragglers</h2>\n<table>\n<tr><th>pipeline</th><th>slowdown</th>"
        "<th>source</th><th>T' (s)</th></tr>\n";
    for (const json& s : stragglers) {
      html += "<tr><td>" + HtmlEscape(Text(s, "pipeline")) + "</td><td>" +
              Format("%.3f", Number(s, "slowdown")) + "</td><td>" + HtmlEscape(Text(s, "source")) +
              "</td><td>" + Format("%.4f", Number(s, "t_prime_s")) + "</td></tr>\n";
    }
    html += "</table>\n";
  }
  html += "</body>\n</html>\n";
  return html;
}

}  // namespace perseus::report
