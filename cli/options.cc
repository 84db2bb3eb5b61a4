#include "cli/options.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "perseus/common/number_text.h"

namespace perseus::cli {
namespace {

// The number CLI11 will store, or nullopt if `text` is not one.
std::optional<double> NumberIn(const std::string& text) {
  double v = 0;
  if (!CLI::detail::lexical_cast(text, v)) return std::nullopt;
  return v;
}

CLI::Validator Bounded(double lo, double hi, bool open_below) {
  const std::string range = (open_below ? "(" : "[") + NumberText(lo) + ", " + NumberText(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        auto v = NumberIn(text);
        if (!v) return "'" + text.substr(0, 40) + "' is not a number";
        if (!std::isfinite(*v)) return "must be a finite number, not " + text.substr(0, 40);
        if (*v < lo || *v > hi || (open_below && *v == lo)) {
          return "must be in " + range + ", not " + text.substr(0, 40);
        }
        return "";
      },
      range);
}

}  // namespace

CLI::Validator Within(double lo, double hi) { return Bounded(lo, hi, false); }
CLI::Validator Above(double lo, double hi) { return Bounded(lo, hi, true); }

CLI::Option* AddPercentOption(CLI::App* command, const std::string& name, double* target,
                              const std::string& help, double max_pct, double scale) {
  // One transform: CLI11 runs transforms and checks in an order of its own.
  const CLI::Validator range = Within(0, max_pct);
  auto percent = CLI::Validator(
      [=](std::string& text) -> std::string {
        std::string number = text;
        if (!number.empty() && number.back() == '%') number.pop_back();
        if (std::string error = range(number); !error.empty()) return error;
        const double v = *NumberIn(number);
        if (v > 0 && v < 0.5) {
          std::fprintf(stderr, "perseus: note: %s %s is %s %%, not %s %% (values are percent)\n",
                       name.c_str(), text.c_str(), NumberText(v).c_str(),
                       NumberText(v * 100).c_str());
        }
        char buffer[40];
        std::snprintf(buffer, sizeof buffer, "%.17g", v * scale);
        text = buffer;
        return "";
      },
      "PCT");
  return command->add_option(name, *target, help + ", percent (2 or 2%), 0.." + NumberText(max_pct))
      ->transform(percent);
}

}  // namespace perseus::cli
