#include "perseus/schedules/render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "perseus/common/html_escape.h"
#include "src/planner/timing.h"

namespace perseus::schedules {

using planner::Instruction;

namespace {

// A coordinate or size in px, one decimal.
std::string Px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

std::string Swatch(double x, double y, double w, double h, const TimelineLegendItem& item) {
  std::string svg = "<rect x=\"" + Px(x) + "\" y=\"" + Px(y) + "\" width=\"" + Px(w) +
                    "\" height=\"" + Px(h) + "\" fill=\"" + HtmlEscape(item.fill) + "\"" +
                    (item.outlined ? " stroke=\"#000\" stroke-width=\"1.5\"" : "") + "/>";
  if (item.hatched) {
    svg += "<rect x=\"" + Px(x) + "\" y=\"" + Px(y) + "\" width=\"" + Px(w) + "\" height=\"" +
           Px(h) + "\" fill=\"url(#perseus-hatch)\"/>";
  }
  return svg;
}

}  // namespace

std::string RenderScheduleText(const RankOrders& orders) {
  std::string out;
  const int width = static_cast<int>(std::to_string(orders.size()).size());
  for (size_t r = 0; r < orders.size(); ++r) {
    char head[32];
    std::snprintf(head, sizeof(head), "rank %*zu |", width, r);
    out += head;
    for (const Action& a : orders[r]) out += ' ' + ActionString(a);
    out += '\n';
  }
  return out;
}

std::vector<double> UnitDurations(const planner::Dag& dag) {
  std::vector<double> d(dag.num_nodes());
  auto units = [](Instruction ins) { return ins == Instruction::kBackward ? 2.0 : 1.0; };
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const planner::Computation& c = dag.node(i);
    d[i] = units(c.instruction) + (c.overlapped() ? units(c.overlap.instruction) : 0.0);
  }
  return d;
}

double LabelWidth(const std::string& text, double font_size) {
  return 0.6 * font_size * static_cast<double>(text.size());
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  const double span = hi - lo > 0 ? hi - lo : 1;
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (raw <= m * mag * (1 + 1e-9)) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    const double t = k * step;
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

std::string TickText(double value, double step) {
  // The fewest decimals that write the step exactly (0.25: 2, 5: 0).
  int decimals = 0;
  if (step > 0) {
    while (decimals < 9) {
      const double scaled = step * std::pow(10.0, decimals);
      if (std::fabs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) break;
      ++decimals;
    }
  }
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string RenderTimelineSvg(const TimelineSpec& spec) {
  const double row = 28, font = 12;
  int rows = static_cast<int>(spec.row_labels.size());
  for (const TimelineBox& b : spec.boxes) rows = std::max(rows, b.row + 1);
  double left = 60;
  for (const std::string& label : spec.row_labels) {
    left = std::max(left, LabelWidth(label, font) + 16);
  }
  const double top = spec.title.empty() ? 10 : 36;
  const double width = spec.width;
  const double end = spec.end > 0 ? spec.end : 1;
  const double scale = width / end;
  const double axis_y = top + row * rows + 2;
  const std::vector<double> ticks = NiceTicks(0, end, std::max(4, static_cast<int>(width / 90)));
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : end;

  // The legend's rows: items side by side, wrapped to the axis width.
  std::string legend;
  double ly = axis_y + 56, lx = left;
  for (const TimelineLegendItem& item : spec.legend) {
    const double w = 26 + LabelWidth(item.text, font) + 18;
    if (lx > left && lx + w > left + width) {
      lx = left;
      ly += 20;
    }
    legend += Swatch(lx, ly - 10, 18, 12, item) + "<text x=\"" + Px(lx + 24) + "\" y=\"" + Px(ly) +
              "\">" + HtmlEscape(item.text) + "</text>\n";
    lx += w;
  }
  if (!spec.legend.empty()) ly += 22;
  if (!spec.scale_label.empty()) {
    const std::string caption = spec.scale_label + ":";
    const double cx = left + LabelWidth(caption, font) + 8;
    legend += "<text x=\"" + Px(left) + "\" y=\"" + Px(ly) + "\">" + HtmlEscape(caption) +
              "</text><text x=\"" + Px(cx) + "\" y=\"" + Px(ly) + "\">" +
              HtmlEscape(spec.scale_low) + "</text>";
    const double gx = cx + LabelWidth(spec.scale_low, font) + 6;
    legend += "<rect class=\"scale\" x=\"" + Px(gx) + "\" y=\"" + Px(ly - 11) +
              "\" width=\"200\" height=\"13\" fill=\"url(#perseus-scale)\"/><text x=\"" +
              Px(gx + 206) + "\" y=\"" + Px(ly) + "\">" + HtmlEscape(spec.scale_high) + "</text>\n";
    ly += 22;
  }
  for (const std::string& note : spec.notes) {
    legend += "<text x=\"" + Px(left) + "\" y=\"" + Px(ly) + "\">" + HtmlEscape(note) + "</text>\n";
    ly += 18;
  }

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"" +
                    Px(left + width + 30) + "\" height=\"" + Px(ly + 4) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg +=
      "<defs><pattern id=\"perseus-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" "
      "height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"2.5\" height=\"6\" "
      "fill=\"#ffffff\" fill-opacity=\"0.55\"/></pattern>";
  if (!spec.scale_label.empty()) {
    svg += "<linearGradient id=\"perseus-scale\"><stop offset=\"0\" stop-color=\"" +
           HtmlEscape(spec.scale_low_colour) + "\"/><stop offset=\"1\" stop-color=\"" +
           HtmlEscape(spec.scale_high_colour) + "\"/></linearGradient>";
  }
  svg += "</defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  if (!spec.title.empty()) {
    svg += "<text x=\"" + Px(left) + "\" y=\"22\" font-size=\"14\" font-weight=\"bold\">" +
           HtmlEscape(spec.title) + "</text>\n";
  }
  // Gridlines behind the boxes, then the rows.
  for (double t : ticks) {
    svg += "<line x1=\"" + Px(left + t * scale) + "\" y1=\"" + Px(top) + "\" x2=\"" +
           Px(left + t * scale) + "\" y2=\"" + Px(axis_y) + "\" stroke=\"#e4e4e4\"/>\n";
  }
  for (int g = 0; g < static_cast<int>(spec.row_labels.size()); ++g) {
    svg += "<text x=\"" + Px(left - 8) + "\" y=\"" + Px(top + row * g + row * 0.62) +
           "\" text-anchor=\"end\">" + HtmlEscape(spec.row_labels[g]) + "</text>\n";
  }
  for (const TimelineBox& b : spec.boxes) {
    const double x = left + b.start * scale;
    const double w = std::max(0.5, (b.end - b.start) * scale);
    const double y = top + row * b.row + 2, h = row - 4;
    svg += "<g class=\"box\"><title>" + HtmlEscape(b.tooltip) + "</title><rect x=\"" + Px(x) +
           "\" y=\"" + Px(y) + "\" width=\"" + Px(w) + "\" height=\"" + Px(h) + "\" fill=\"" +
           HtmlEscape(b.fill) + "\"" +
           (b.outlined ? " stroke=\"#000\" stroke-width=\"1.5\"" : " stroke=\"#fff\"") + "/>";
    if (b.hatched) {
      svg += "<rect x=\"" + Px(x) + "\" y=\"" + Px(y) + "\" width=\"" + Px(w) + "\" height=\"" +
             Px(h) + "\" fill=\"url(#perseus-hatch)\"/>";
    }
    if (!b.label.empty()) {
      double size = kBoxLabelFontSize;
      while (size > kMinBoxLabelFontSize && LabelWidth(b.label, size) > w - 4) size -= 0.5;
      if (LabelWidth(b.label, size) <= w - 4) {
        svg += "<text x=\"" + Px(x + w / 2) + "\" y=\"" + Px(y + h / 2 + size * 0.35) +
               "\" font-size=\"" + Px(size) +
               "\" fill=\"#fff\" text-anchor=\"middle\" font-weight=\"bold\">" +
               HtmlEscape(b.label) + "</text>";
      }
    }
    svg += "</g>\n";
  }
  // The time axis.
  svg += "<g class=\"axis\"><line x1=\"" + Px(left) + "\" y1=\"" + Px(axis_y) + "\" x2=\"" +
         Px(left + width) + "\" y2=\"" + Px(axis_y) + "\" stroke=\"#444\"/>\n";
  for (double t : ticks) {
    svg += "<line class=\"tick\" x1=\"" + Px(left + t * scale) + "\" y1=\"" + Px(axis_y) +
           "\" x2=\"" + Px(left + t * scale) + "\" y2=\"" + Px(axis_y + 5) +
           "\" stroke=\"#444\"/><text class=\"tick-label\" x=\"" + Px(left + t * scale) +
           "\" y=\"" + Px(axis_y + 18) + "\" text-anchor=\"middle\">" + TickText(t, step) +
           "</text>\n";
  }
  svg += "<text x=\"" + Px(left + width / 2) + "\" y=\"" + Px(axis_y + 36) +
         "\" text-anchor=\"middle\">" + HtmlEscape(spec.axis_label) + "</text></g>\n";
  svg += legend;
  return svg + "</svg>\n";
}

std::string BoxLabel(const planner::Computation& c, int ranks, bool chunked) {
  if (c.overlapped()) return planner::ComputationLabel(c);
  std::string label = planner::InstructionLetter(c.instruction) + std::to_string(c.microbatch);
  if (chunked && ranks > 0) label += "c" + std::to_string(c.stage / ranks);
  return label;
}

bool HasChunks(const planner::Dag& dag) {
  for (int i = 0; i < dag.num_nodes(); ++i) {
    if (dag.node(i).stage >= dag.num_gpus()) return true;
  }
  return false;
}

std::string RenderScheduleSvg(const planner::Dag& dag, const std::vector<double>& duration,
                              const std::string& title, const std::string& time_unit) {
  std::vector<double> start;
  const double makespan = planner::EarliestStarts(dag, duration, &start);
  const bool chunked = HasChunks(dag);
  const char* kForward = "#4e79a7";
  const char* kBackward = "#f28e2b";
  const char* kInput = "#e15759";
  const char* kWeight = "#59a14f";
  const char* kOverlap = "#b07aa1";
  TimelineSpec spec;
  spec.title = title;
  for (int g = 0; g < dag.num_gpus(); ++g) spec.row_labels.push_back("rank " + std::to_string(g));
  bool has[5] = {false, false, false, false, false};
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const planner::Computation& c = dag.node(i);
    int kind = 0;
    if (c.instruction == Instruction::kBackward) kind = 1;
    if (c.instruction == Instruction::kBackwardInput) kind = 2;
    if (c.instruction == Instruction::kBackwardWeight) kind = 3;
    if (c.overlapped()) kind = 4;
    has[kind] = true;
    const char* colours[] = {kForward, kBackward, kInput, kWeight, kOverlap};
    char tooltip[160];
    std::snprintf(tooltip, sizeof(tooltip), "%s rank %d, start %.4g, duration %.4g",
                  planner::ComputationLabel(c).c_str(), c.gpu, start[i], duration[i]);
    spec.boxes.push_back({c.gpu, start[i], start[i] + duration[i], colours[kind], false, false,
                          BoxLabel(c, dag.num_gpus(), chunked), tooltip});
  }
  spec.end = makespan;
  // Wide enough that the shortest box holds a label like "F3c1" (up to 2400 px).
  double shortest = makespan;
  for (double d : duration) {
    if (d > 0) shortest = std::min(shortest, d);
  }
  if (shortest > 0) spec.width = std::clamp(34 * makespan / shortest, 1100.0, 2400.0);
  char axis[160];
  std::snprintf(axis, sizeof(axis), "time%s%s%s; iteration time %.4g%s",
                time_unit.empty() ? "" : " (", time_unit.c_str(), time_unit.empty() ? "" : ")",
                makespan, time_unit == "s" ? " s" : "");
  spec.axis_label = axis;
  const char* names[] = {"F forward", "B backward", "I backward (input)", "W backward (weight)",
                         "overlapped F+B"};
  const char* colours[] = {kForward, kBackward, kInput, kWeight, kOverlap};
  for (int k = 0; k < 5; ++k) {
    if (has[k]) spec.legend.push_back({colours[k], false, false, names[k]});
  }
  spec.notes.push_back(
      std::string("box label: instruction and microbatch (F3 = forward of microbatch 3)") +
      (chunked ? "; cN = the rank's model chunk N (F3c1: microbatch 3 through chunk 1)" : ""));
  return RenderTimelineSvg(spec);
}

}  // namespace perseus::schedules
