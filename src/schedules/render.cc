#include "perseus/schedules/render.h"

#include <algorithm>
#include <cstdio>

#include "src/planner/timing.h"

namespace perseus::schedules {

using planner::Instruction;

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

std::string RenderScheduleSvg(const planner::Dag& dag, const std::vector<double>& duration,
                              const std::string& title) {
  std::vector<double> start;
  const double makespan = planner::EarliestStarts(dag, duration, &start);
  const double left = 70, top = 40, row = 28, width = 1100;
  const double scale = makespan > 0 ? width / makespan : 1;
  const int rows = dag.num_gpus();
  std::string svg;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"11\">\n",
                left + width + 20, top + row * rows + 40);
  svg += buf;
  std::string escaped;
  for (char c : title) {
    if (c == '<') {
      escaped += "&lt;";
    } else if (c == '&') {
      escaped += "&amp;";
    } else {
      escaped += c;
    }
  }
  std::snprintf(buf, sizeof(buf), "<text x=\"%.0f\" y=\"20\" font-size=\"14\">%s</text>\n", left,
                escaped.c_str());
  svg += buf;
  for (int g = 0; g < rows; ++g) {
    std::snprintf(buf, sizeof(buf), "<text x=\"5\" y=\"%.1f\">rank %d</text>\n",
                  top + row * g + row * 0.6, g);
    svg += buf;
  }
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const planner::Computation& c = dag.node(i);
    const char* colour = "#4e79a7";  // forward
    if (c.instruction == Instruction::kBackward) colour = "#f28e2b";
    if (c.instruction == Instruction::kBackwardInput) colour = "#e15759";
    if (c.instruction == Instruction::kBackwardWeight) colour = "#59a14f";
    if (c.overlapped()) colour = "#b07aa1";
    const double x = left + start[i] * scale, w = std::max(1.0, duration[i] * scale);
    std::snprintf(buf, sizeof(buf),
                  "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\" "
                  "stroke=\"white\"><title>%s rank %d, start %.4g, duration %.4g</title></rect>\n",
                  x, top + row * c.gpu + 2, w, row - 4, colour,
                  planner::ComputationLabel(c).c_str(), c.gpu, start[i], duration[i]);
    svg += buf;
    // Inside the box: "F3", or an overlap's "(0F7;7B3)" where it fits.
    const std::string label =
        c.overlapped() ? planner::ComputationLabel(c)
                       : planner::InstructionLetter(c.instruction) + std::to_string(c.microbatch);
    if (w >= (c.overlapped() ? 56 : 14)) {
      std::snprintf(buf, sizeof(buf),
                    "<text x=\"%.2f\" y=\"%.1f\" fill=\"white\" text-anchor=\"middle\">%s</text>\n",
                    x + w / 2, top + row * c.gpu + row * 0.62, label.c_str());
      svg += buf;
    }
  }
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%.0f\" y=\"%.0f\">iteration time %.4g; F blue, B orange, I red, W "
                "green, overlapped F+B purple</text>\n</svg>\n",
                left, top + row * rows + 25, makespan);
  svg += buf;
  return svg;
}

}  // namespace perseus::schedules
