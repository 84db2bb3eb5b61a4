#include "perseus/planner/problem.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "perseus/common/number_text.h"

namespace perseus::planner {
namespace {

// A real time a hair above an integer number of units (from floating-point
// noise in t / tau) must not cost a whole extra unit.
constexpr double kQuantizationSlackUnits = 1e-6;

// The largest energy of one computation in cost units (kCostUnitJoules): 1e9
// J, so that sums over a million computations stay below 2^60.
constexpr double kMaxEnergyCostUnits = 1e15;

int64_t Quantize(double time_s, double unit_time_s, bool round_down) {
  double u = round_down ? std::floor(time_s / unit_time_s + kQuantizationSlackUnits)
                        : std::ceil(time_s / unit_time_s - kQuantizationSlackUnits);
  return std::max<int64_t>(1, static_cast<int64_t>(u));
}

OptionSet MakeOptionSet(const OptionKey& key, const std::vector<Measurement>& rows,
                        const PlannerOptions& opt) {
  OptionSet set;
  set.key = key;
  std::vector<Option> all;
  for (const Measurement& m : rows) {
    Option o;
    o.frequency_mhz = m.frequency_mhz;
    o.time_s = m.time_s;
    o.energy_j = m.energy_j;
    o.effective_j = m.energy_j - opt.blocking_power_w * m.time_s;
    o.units = Quantize(m.time_s, opt.unit_time_s, opt.round_down);
    all.push_back(o);
  }
  set.highest_frequency = *std::max_element(
      all.begin(), all.end(),
      [](const Option& a, const Option& b) { return a.frequency_mhz < b.frequency_mhz; });
  // Pareto filter in (time, effective energy): sort by time (ties: lower
  // effective first), keep options strictly cheaper than every faster one.
  std::sort(all.begin(), all.end(), [](const Option& a, const Option& b) {
    if (a.time_s != b.time_s) return a.time_s < b.time_s;
    return a.effective_j < b.effective_j;
  });
  for (const Option& o : all) {
    if (set.options.empty() || o.effective_j < set.options.back().effective_j) {
      set.options.push_back(o);
    }
  }
  // Model points: per distinct unit count, the cheapest option (the slowest of
  // those sharing it, since effective energy falls with time).
  std::vector<ModelPoint> points;
  for (const Option& o : set.options) {
    if (!points.empty() && points.back().units == o.units) {
      points.back().effective_j = o.effective_j;
    } else {
      points.push_back(ModelPoint{o.units, o.effective_j});
    }
  }
  set.cost = BuildCostTable(points, opt.cost_model);
  set.option_for_units.assign(set.cost.max_units - set.cost.min_units + 1, 0);
  int chosen = 0;
  for (int64_t d = set.cost.min_units; d <= set.cost.max_units; ++d) {
    while (chosen + 1 < static_cast<int>(set.options.size()) &&
           set.options[chosen + 1].units <= d) {
      ++chosen;
    }
    set.option_for_units[d - set.cost.min_units] = chosen;
  }
  return set;
}

Result<const std::vector<Measurement>*> ProfileRows(const Profile& profile, const ProfileKey& key) {
  const std::vector<Measurement>* rows = profile.Find(key.stage, key.instruction);
  if (rows == nullptr || rows->empty()) {
    return Status::InvalidInput(profile.source + ": no rows for stage " +
                                std::to_string(key.stage) + " " +
                                std::string(InstructionName(key.instruction)) +
                                " (the schedule needs it; the profile has " +
                                std::to_string(profile.num_stages) + " stages)");
  }
  return rows;
}

// The measurements an option set is made of: the profile's rows, or for an
// overlapped pair, at every frequency both halves have, the sum of their
// times and of their energies (they run back to back at one clock).
Result<std::vector<Measurement>> OptionRows(const Profile& profile, const OptionKey& key,
                                            const Computation& c) {
  auto first = ProfileRows(profile, key.key);
  if (!first.ok()) return first.status();
  if (!key.overlapped()) return **first;
  auto second = ProfileRows(profile, key.overlap);
  if (!second.ok()) return second.status();
  std::map<int, const Measurement*> at_frequency;
  for (const Measurement& m : **second) at_frequency[m.frequency_mhz] = &m;
  std::vector<Measurement> rows;
  for (const Measurement& f : **first) {
    auto b = at_frequency.find(f.frequency_mhz);
    if (b == at_frequency.end()) continue;
    Measurement sum = f;
    sum.time_s = f.time_s + b->second->time_s;
    sum.energy_j = f.energy_j + b->second->energy_j;
    rows.push_back(sum);
  }
  if (rows.empty()) {
    return Status::InvalidInput(profile.source + ": stage " + std::to_string(key.key.stage) + " " +
                                std::string(InstructionName(key.key.instruction)) + " and stage " +
                                std::to_string(key.overlap.stage) + " " +
                                std::string(InstructionName(key.overlap.instruction)) +
                                " have no frequency in common, but the overlapped " +
                                ComputationLabel(c) + " runs both at one clock");
  }
  return rows;
}

}  // namespace

Result<Problem> BuildProblem(std::shared_ptr<const Dag> dag, const Profile& profile,
                             const PlannerOptions& options) {
  if (!dag || !dag->finalized()) return Status::Internal("BuildProblem needs a finalized DAG");
  if (!(options.unit_time_s > 0) || !std::isfinite(options.unit_time_s)) {
    return Status::InvalidInput("unit_time must be a positive number of seconds")
        .WithField("unit_time");
  }
  if (!(options.blocking_power_w >= 0) || !std::isfinite(options.blocking_power_w)) {
    return Status::InvalidInput("blocking_power_w must be a non-negative number of watts")
        .WithField("blocking_power_w");
  }
  Problem problem;
  problem.dag = dag;
  problem.options = options;
  problem.num_gpus = dag->num_gpus();
  std::map<OptionKey, int> set_index;
  int64_t total_units = 0;
  problem.set_of_node.resize(dag->num_nodes());
  for (int id = 0; id < dag->num_nodes(); ++id) {
    const Computation& c = dag->node(id);
    OptionKey key{{c.stage, c.instruction}};
    if (c.overlapped()) key.overlap = {c.overlap.stage, c.overlap.instruction};
    auto it = set_index.find(key);
    if (it == set_index.end()) {
      auto rows = OptionRows(profile, key, c);
      if (!rows.ok()) return rows.status();
      // Bounded work: a tiny tau against a long computation would build cost
      // tables without bound (and could overflow durations).
      double max_time = 0, max_energy = 0;
      for (const Measurement& m : *rows) {
        max_time = std::max(max_time, m.time_s);
        max_energy = std::max({max_energy, m.energy_j, options.blocking_power_w * m.time_s});
      }
      const double units = std::ceil(max_time / options.unit_time_s);
      if (units > static_cast<double>(options.max_units_per_computation)) {
        return Status::InvalidInput(
                   "unit_time " + NumberText(options.unit_time_s) + " s is too small: stage " +
                   std::to_string(key.key.stage) + " " +
                   std::string(InstructionName(key.key.instruction)) + " takes up to " +
                   NumberText(max_time) + " s, " + NumberText(units) + " units (at most " +
                   std::to_string(options.max_units_per_computation) +
                   " per computation); a unit_time of at least " +
                   NumberText(max_time / static_cast<double>(options.max_units_per_computation)) +
                   " s fits")
            .WithField("unit_time");
      }
      total_units += static_cast<int64_t>(units);
      if (total_units > options.max_total_units) {
        return Status::InvalidInput(
                   "unit_time " + NumberText(options.unit_time_s) +
                   " s is too small for this profile: its computations span more than " +
                   std::to_string(options.max_total_units) +
                   " time units in all (the planner's tables would not fit its memory bound); "
                   "choose "
                   "a larger unit_time (or 0 for the automatic one)")
            .WithField("unit_time");
      }
      // Integer costs (kCostUnitJoules) and their sums over the DAG must stay
      // far from int64 overflow.
      if (!(max_energy / kCostUnitJoules <= kMaxEnergyCostUnits)) {
        return Status::InvalidInput(
            profile.source + ": stage " + std::to_string(key.key.stage) + " " +
            std::string(InstructionName(key.key.instruction)) + " uses up to " +
            NumberText(max_energy) + " J per computation (after energy_scale); the planner " +
            "takes at most " + NumberText(kMaxEnergyCostUnits * kCostUnitJoules) + " J");
      }
      it = set_index.emplace(key, static_cast<int>(problem.option_sets.size())).first;
      problem.option_sets.push_back(MakeOptionSet(key, *rows, options));
    }
    problem.set_of_node[id] = it->second;
  }
  return problem;
}

}  // namespace perseus::planner
