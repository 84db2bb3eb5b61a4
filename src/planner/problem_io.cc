#include "perseus/planner/problem_io.h"

#include <cmath>

#include "nlohmann/json.hpp"

namespace perseus::planner {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "perseus-problem/1";

}  // namespace

std::string ProblemToJson(const Problem& problem) {
  json sets = json::array();
  for (const OptionSet& set : problem.option_sets) {
    json options = json::array();
    for (const Option& o : set.options) options.push_back({o.frequency_mhz, o.time_s, o.energy_j});
    sets.push_back({{"options", std::move(options)}});
  }
  const Dag& dag = *problem.dag;
  json computations = json::array();
  for (int i = 0; i < dag.num_nodes(); ++i) {
    json successors = json::array();
    for (int j : dag.successors(i)) successors.push_back(j);
    computations.push_back(
        {{"option_set", problem.set_of_node[static_cast<size_t>(i)]}, {"successors", successors}});
  }
  json out = {{"format", kFormat},
              {"blocking_power_w", problem.options.blocking_power_w},
              {"gpus", problem.num_gpus},
              {"option_sets", std::move(sets)},
              {"computations", std::move(computations)}};
  return out.dump() + "\n";
}

Result<std::shared_ptr<const Problem>> ParseProblemJson(
    std::string_view text, const std::string& path, const std::vector<Computation>& computations) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& field, const std::string& what) {
    return Status::InvalidInput(path + ": " + field + ": " + what);
  };
  if (j.is_discarded()) return Status::InvalidInput(path + ": not valid JSON");
  if (!j.is_object()) return Status::InvalidInput(path + ": expected a JSON object");
  if (!j.contains("format") || j["format"] != kFormat) {
    return bad("format", std::string("expected \"") + kFormat + "\"");
  }
  auto number = [&](const json& v, double* out) {
    if (!v.is_number()) return false;
    *out = v.get<double>();
    return std::isfinite(*out);
  };
  auto problem = std::make_shared<Problem>();
  if (!j.contains("blocking_power_w") ||
      !number(j["blocking_power_w"], &problem->options.blocking_power_w) ||
      problem->options.blocking_power_w < 0) {
    return bad("blocking_power_w", "expected a number >= 0");
  }
  if (!j.contains("gpus") || !j["gpus"].is_number_integer() || j["gpus"].get<int64_t>() < 1 ||
      j["gpus"].get<int64_t>() > 1'000'000) {
    return bad("gpus", "expected a positive integer");
  }
  problem->num_gpus = j["gpus"].get<int>();
  const double power = problem->options.blocking_power_w;

  if (!j.contains("option_sets") || !j["option_sets"].is_array() || j["option_sets"].empty()) {
    return bad("option_sets", "expected a non-empty array");
  }
  for (size_t s = 0; s < j["option_sets"].size(); ++s) {
    const json& set = j["option_sets"][s];
    const std::string field = "option_sets[" + std::to_string(s) + "].options";
    if (!set.is_object() || !set.contains("options") || !set["options"].is_array() ||
        set["options"].empty()) {
      return bad(field, "expected a non-empty array");
    }
    OptionSet out;
    for (size_t k = 0; k < set["options"].size(); ++k) {
      const json& o = set["options"][k];
      const std::string at = field + "[" + std::to_string(k) + "]";
      Option option;
      double frequency = 0;
      if (!o.is_array() || o.size() != 3 || !number(o[0], &frequency) ||
          !number(o[1], &option.time_s) || !number(o[2], &option.energy_j)) {
        return bad(at, "expected [frequency_mhz, time_s, energy_j]");
      }
      if (frequency != std::floor(frequency) || frequency <= 0 || frequency > 1e6) {
        return bad(at, "frequency_mhz must be a positive integer");
      }
      if (!(option.time_s > 0) || option.energy_j < 0) {
        return bad(at, "time_s must be > 0 and energy_j >= 0");
      }
      if (!out.options.empty() && option.time_s <= out.options.back().time_s) {
        return bad(at, "options must be fastest first (time strictly increasing)");
      }
      option.frequency_mhz = static_cast<int>(frequency);
      option.effective_j = option.energy_j - power * option.time_s;
      out.options.push_back(option);
    }
    out.highest_frequency = *std::max_element(
        out.options.begin(), out.options.end(),
        [](const Option& a, const Option& b) { return a.frequency_mhz < b.frequency_mhz; });
    problem->option_sets.push_back(std::move(out));
  }

  if (!j.contains("computations") || !j["computations"].is_array()) {
    return bad("computations", "expected an array");
  }
  const json& comps = j["computations"];
  if (comps.size() != computations.size()) {
    return bad("computations", "has " + std::to_string(comps.size()) +
                                   " entries, computations.csv " +
                                   std::to_string(computations.size()));
  }
  auto dag = std::make_shared<Dag>();
  for (const Computation& c : computations) dag->AddComputation(c);
  const int64_t n = static_cast<int64_t>(computations.size());
  const int64_t sets = static_cast<int64_t>(problem->option_sets.size());
  for (size_t i = 0; i < comps.size(); ++i) {
    const json& c = comps[i];
    const std::string field = "computations[" + std::to_string(i) + "]";
    if (!c.is_object() || !c.contains("option_set") || !c["option_set"].is_number_integer() ||
        c["option_set"].get<int64_t>() < 0 || c["option_set"].get<int64_t>() >= sets) {
      return bad(field + ".option_set", "expected an index into option_sets");
    }
    problem->set_of_node.push_back(c["option_set"].get<int>());
    if (!c.contains("successors") || !c["successors"].is_array()) {
      return bad(field + ".successors", "expected an array of computation ids");
    }
    for (const json& to : c["successors"]) {
      if (!to.is_number_integer() || to.get<int64_t>() < 0 || to.get<int64_t>() >= n ||
          to.get<int64_t>() == static_cast<int64_t>(i)) {
        return bad(field + ".successors", "expected other computations' ids");
      }
      dag->AddDependency(static_cast<int>(i), to.get<int>());
    }
  }
  if (Status s = dag->Finalize(); !s.ok()) return bad("computations", s.message());
  problem->dag = std::move(dag);
  return std::shared_ptr<const Problem>(std::move(problem));
}

}  // namespace perseus::planner
