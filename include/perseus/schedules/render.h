// Renderings of a schedule for humans: which computation each GPU runs, in
// order (text), and when (SVG timeline). RenderTimelineSvg is the one box
// timeline of Perseus: show-schedule's SVG and the report's plan timeline
// both draw with it.
#pragma once

#include <string>
#include <vector>

#include "perseus/planner/dag.h"
#include "perseus/schedules/schedule.h"

namespace perseus::schedules {

// One line per rank: "rank 0 | 0F0 0F1 0B0 ...", actions in torch's notation
// (stage, F/B/I/W, microbatch; an overlapped pair as "(0F7;7B3)").
std::string RenderScheduleText(const RankOrders& orders);

// One box of a timeline: a computation on a row, from start to end.
struct TimelineBox {
  int row = 0;
  double start = 0, end = 0;
  std::string fill;       // CSS colour
  bool hatched = false;   // white diagonal stripes over the fill
  bool outlined = false;  // a black outline (the report: critical path)
  std::string label;      // drawn inside when it fits (shrunk to 8 px, else left out)
  std::string tooltip;    // the box's <title>
};

// A legend entry: a swatch like a box, and its text.
struct TimelineLegendItem {
  std::string fill;
  bool hatched = false;
  bool outlined = false;
  std::string text;
};

struct TimelineSpec {
  std::string title;  // above the timeline; none if empty
  std::vector<std::string> row_labels;
  std::vector<TimelineBox> boxes;
  double end = 0;                   // the time axis runs from 0 to end
  std::string axis_label = "time";  // under the ticks, e.g. "time (s)"
  std::vector<TimelineLegendItem> legend;
  // An optional colour scale: a gradient from scale_low_colour to
  // scale_high_colour, captioned "scale_label: scale_low ... scale_high".
  std::string scale_label, scale_low, scale_high, scale_low_colour, scale_high_colour;
  std::vector<std::string> notes;  // text lines under the legend
  double width = 1100;             // of the time axis, px
};

// Font size of box labels, px (before shrinking), and the width the
// renderer reckons a label takes: 0.6 em per character, the average advance
// of sans-serif digits and capitals. A label is drawn only if it fits its box
// with 2 px to spare on each side.
inline constexpr double kBoxLabelFontSize = 11;
inline constexpr double kMinBoxLabelFontSize = 8;
double LabelWidth(const std::string& text, double font_size);

// "Nice" tick values (1, 2, 2.5 or 5 x 10^k apart) covering [lo, hi], about
// `target` of them.
std::vector<double> NiceTicks(double lo, double hi, int target = 6);
// A tick value with as many decimals as the step between ticks needs (0.25: 2).
std::string TickText(double value, double step);

// The timeline as one self-contained <svg> element: row labels, boxes, a time
// axis with ticks and gridlines, the legend, the colour scale and the notes.
std::string RenderTimelineSvg(const TimelineSpec& spec);

// A box's short label: instruction letter and microbatch ("F3", "B0"), and
// for a schedule with several model chunks per rank the chunk ("F3c1": chunk
// 1 of the rank, model stage chunk * ranks + rank); an overlapped pair as
// torch writes it ("(0F7;7B3)").
std::string BoxLabel(const planner::Computation& c, int ranks, bool chunked);
// Whether some rank of the DAG runs more than one model stage (interleaved).
bool HasChunks(const planner::Dag& dag);

// A timeline: every computation as a box at its earliest start, given a
// duration per DAG node (seconds or any unit); colour by instruction.
// `time_unit` goes in the axis label: "time (s)", or a description of unitless
// durations ("F = 1, B = 2, I = W = 1"); none if empty.
std::string RenderScheduleSvg(const planner::Dag& dag, const std::vector<double>& duration,
                              const std::string& title, const std::string& time_unit = "");

// Illustrative durations when no profile is given: F 1, B 2, I 1, W 1; an
// overlapped pair the sum of its halves'.
std::vector<double> UnitDurations(const planner::Dag& dag);

}  // namespace perseus::schedules
