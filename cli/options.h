// The conventions every subcommand's options follow, in one place:
// - numbers are finite and within a stated range ("--repeat must be 1..10000"),
//   never NaN or infinity;
// - relative amounts (noise, outlier rates) are percentages, written 2 or 2%;
// - lists are comma-separated or repeated (--methods a,b or --methods a b);
// - times are seconds, powers watts per GPU, frequencies MHz.
#pragma once

#include <string>

#include "CLI/CLI.hpp"

namespace perseus::cli {

// A finite number in [lo, hi] (NaN and infinities refused, unlike CLI::Range).
CLI::Validator Within(double lo, double hi);
// A finite number in (lo, hi]: for times and scales that must be positive.
CLI::Validator Above(double lo, double hi);

// A percentage option: 2 and 2% both mean 2 percent; 0..max_pct. A value
// below 0.5 that is not 0 gets a note on stderr (0.02 is 0.02 %, not 2 %).
// `*target` gets the percentage times `scale` (0.01: a fraction).
CLI::Option* AddPercentOption(CLI::App* command, const std::string& name, double* target,
                              const std::string& help, double max_pct, double scale = 1);

}  // namespace perseus::cli
