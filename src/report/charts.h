// What the HTML pages of perseus_report share: the page style, number
// formatting, and an x-y chart (axes with nice ticks, lines, labelled markers
// that do not overlap, a legend beside the plot).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "perseus/common/html_escape.h"
#include "perseus/schedules/render.h"

namespace perseus::report {

inline constexpr char kPageStyle[] =
    "body{font-family:sans-serif;max-width:1040px;margin:2em auto;color:#222;line-height:1.4}"
    "h2{margin-top:2em}td,th{padding:2px 10px;text-align:right}"
    "td:first-child,th:first-child{text-align:left;white-space:nowrap}.big{font-size:1.6em}"
    ".flag{color:#b40426;font-weight:bold}code{background:#f3f3f3;padding:1px 4px}"
    ".setting{background:#fff7e0;border-left:4px solid #f2b01e;padding:6px 10px}";

inline std::string Format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, a);
  return buf;
}

struct Plot {
  double x0, x1, y0, y1;  // data ranges
  double left = 80, top = 20, width = 620, height = 340;
  double legend_y = 30;
  std::vector<std::pair<double, double>> placed_labels;  // top-left corners, 14 px high
  std::vector<double> placed_widths;
  std::string svg, overlay;

  Plot(double ax0, double ax1, double ay0, double ay1, const std::string& xlabel,
       const std::string& ylabel)
      : x0(ax0), x1(ax1), y0(ay0), y1(ay1) {
    svg +=
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"1000\" "
        "height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n";
    svg += "<rect x=\"" + Px(left) + "\" y=\"" + Px(top) + "\" width=\"" + Px(width) +
           "\" height=\"" + Px(height) + "\" fill=\"none\" stroke=\"#888\"/>\n";
    const std::vector<double> xt = schedules::NiceTicks(x0, x1, 7);
    const double xs = xt.size() > 1 ? xt[1] - xt[0] : x1 - x0;
    for (double t : xt) {
      const double x = X(t);
      svg += "<line class=\"tick\" x1=\"" + Px(x) + "\" y1=\"" + Px(top + height) + "\" x2=\"" +
             Px(x) + "\" y2=\"" + Px(top + height + 5) + "\" stroke=\"#888\"/><text x=\"" + Px(x) +
             "\" y=\"" + Px(top + height + 18) + "\" text-anchor=\"middle\">" +
             schedules::TickText(t, xs) + "</text>\n";
    }
    const std::vector<double> yt = schedules::NiceTicks(y0, y1, 8);
    const double ys = yt.size() > 1 ? yt[1] - yt[0] : y1 - y0;
    for (double t : yt) {
      const double y = Y(t);
      svg += "<line class=\"tick\" x1=\"" + Px(left - 5) + "\" y1=\"" + Px(y) + "\" x2=\"" +
             Px(left + width) + "\" y2=\"" + Px(y) + "\" stroke=\"#e4e4e4\"/><text x=\"" +
             Px(left - 8) + "\" y=\"" + Px(y + 4) + "\" text-anchor=\"end\">" +
             schedules::TickText(t, ys) + "</text>\n";
    }
    svg += "<text class=\"axis-label\" x=\"" + Px(left + width / 2) + "\" y=\"" +
           Px(top + height + 40) + "\" text-anchor=\"middle\">" + HtmlEscape(xlabel) + "</text>\n";
    svg += "<text class=\"axis-label\" transform=\"translate(18," + Px(top + height / 2) +
           ") rotate(-90)\" text-anchor=\"middle\">" + HtmlEscape(ylabel) + "</text>\n";
  }
  static std::string Px(double v) { return Format("%.1f", v); }
  double X(double v) const { return left + (v - x0) / (x1 - x0) * width; }
  double Y(double v) const { return top + height - (v - y0) / (y1 - y0) * height; }
  void Polyline(const std::vector<std::pair<double, double>>& pts, const std::string& colour,
                bool dashed = false) {
    svg += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"2\"" +
           (dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"";
    for (const auto& [x, y] : pts) svg += Px(X(x)) + "," + Px(Y(y)) + " ";
    svg += "\"/>\n";
  }
  // A label of width w at (x, y-top-left) overlaps none placed so far and
  // stays inside the plot.
  bool Free(double x, double y, double w) const {
    if (x < left + 2 || x + w > left + width - 2 || y < top + 2 || y + 14 > top + height - 2) {
      return false;
    }
    for (size_t k = 0; k < placed_labels.size(); ++k) {
      const auto& [px, py] = placed_labels[k];
      if (x < px + placed_widths[k] + 4 && px < x + w + 4 && y < py + 16 && py < y + 16) {
        return false;
      }
    }
    return true;
  }
  void Marker(double vx, double vy, const std::string& colour, const std::string& label) {
    const double cx = X(vx), cy = Y(vy);
    svg += "<circle cx=\"" + Px(cx) + "\" cy=\"" + Px(cy) + "\" r=\"5\" fill=\"" + colour +
           "\"><title>" + HtmlEscape(label) + "</title></circle>\n";
    const double w = schedules::LabelWidth(label, 12);
    // Candidate places around the marker, nearest first, then further out.
    double bx = cx + 8, by = cy - 22;
    bool found = false;
    for (double d = 0; d < 140 && !found; d += 16) {
      const std::pair<double, double> tries[] = {{cx + 8, cy - 20 - d},
                                                 {cx + 8, cy + 6 + d},
                                                 {cx - 8 - w, cy - 20 - d},
                                                 {cx - 8 - w, cy + 6 + d}};
      for (const auto& [tx, ty] : tries) {
        if (Free(tx, ty, w)) {
          bx = tx;
          by = ty;
          found = true;
          break;
        }
      }
    }
    placed_labels.push_back({bx, by});
    placed_widths.push_back(w);
    const double ax = bx < cx ? bx + w : bx, ay = by < cy ? by + 14 : by;
    if (std::hypot(ax - cx, ay - cy) > 24) {  // a leader line to a far label
      overlay += "<line x1=\"" + Px(cx) + "\" y1=\"" + Px(cy) + "\" x2=\"" + Px(ax) + "\" y2=\"" +
                 Px(ay) + "\" stroke=\"" + colour + "\" stroke-width=\"0.8\"/>\n";
    }
    overlay += "<text class=\"marker-label\" x=\"" + Px(bx) + "\" y=\"" + Px(by + 11) +
               "\" fill=\"" + colour + "\">" + HtmlEscape(label) + "</text>\n";
  }
  // A point drawn as a warning: a red ring.
  void Flag(double vx, double vy) {
    overlay += "<circle class=\"flag\" cx=\"" + Px(X(vx)) + "\" cy=\"" + Px(Y(vy)) +
               "\" r=\"6\" fill=\"none\" stroke=\"#b40426\" stroke-width=\"2\"/>\n";
  }
  void LegendLine(const std::string& colour, const std::string& text, bool dashed) {
    const double x = left + width + 20;
    svg += "<line x1=\"" + Px(x) + "\" y1=\"" + Px(legend_y - 4) + "\" x2=\"" + Px(x + 24) +
           "\" y2=\"" + Px(legend_y - 4) + "\" stroke=\"" + colour + "\" stroke-width=\"2\"" +
           (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/><text class=\"legend\" x=\"" +
           Px(x + 30) + "\" y=\"" + Px(legend_y) + "\">" + HtmlEscape(text) + "</text>\n";
    legend_y += 20;
  }
  void LegendFlag(const std::string& text) {
    const double x = left + width + 20;
    svg += "<circle cx=\"" + Px(x + 12) + "\" cy=\"" + Px(legend_y - 4) +
           "\" r=\"6\" fill=\"none\" stroke=\"#b40426\" stroke-width=\"2\"/><text "
           "class=\"legend\" x=\"" +
           Px(x + 30) + "\" y=\"" + Px(legend_y) + "\" fill=\"#b40426\">" + HtmlEscape(text) +
           "</text>\n";
    legend_y += 20;
  }
  std::string Finish() { return svg + overlay + "</svg>\n"; }
};

}  // namespace perseus::report
