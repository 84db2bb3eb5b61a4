// The median of a list of numbers, one definition for every part that
// takes one (the profiler's outlier filter and blocking power, the
// coordinator's straggler policy and measured blocking power, perseus
// profile's blocking power over the stages).
#pragma once

#include <algorithm>
#include <vector>

namespace perseus {

// The median of `values` (the mean of the middle two for an even count);
// 0 for an empty list. O(n).
inline double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  const auto mid = values.begin() + static_cast<long>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  const double upper = *mid;
  if (values.size() % 2 == 1) return upper;
  return (*std::max_element(values.begin(), mid) + upper) / 2;
}

}  // namespace perseus
