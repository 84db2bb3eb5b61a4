#include "perseus/emulator/emulator.h"

#include <cmath>
#include <cstdlib>
#include <functional>

#include "perseus/planner/improve.h"

namespace perseus::emulator {

std::string_view MethodName(Method method) {
  switch (method) {
    case Method::kAllMax:
      return "all-max";
    case Method::kPerseus:
      return "perseus";
    case Method::kEnvPipe:
      return "envpipe";
    case Method::kZeusGlobal:
      return "zeus-global";
    case Method::kZeusPerStage:
      return "zeus-per-stage";
  }
  return "?";
}

std::string_view MethodApproximation(Method method) {
  switch (method) {
    case Method::kZeusGlobal:
      return "zeus-global: the profile has no power-limit data; a power limit is approximated by "
             "a global SM frequency cap";
    case Method::kEnvPipe:
      return "envpipe: frequency steps are the profile's Pareto-optimal frequencies";
    default:
      return "";
  }
}

std::vector<std::string> MethodApproximations(const std::vector<Method>& methods) {
  std::vector<std::string> out;
  for (Method m : methods) {
    if (!MethodApproximation(m).empty()) out.emplace_back(MethodApproximation(m));
  }
  return out;
}

std::vector<std::string> AllMethodNames() {
  std::vector<std::string> names;
  for (Method m : kMethods) names.emplace_back(MethodName(m));
  return names;
}

std::string MethodNames() {
  std::string names;
  for (Method m : kMethods) {
    if (!names.empty()) names += ", ";
    names += MethodName(m);
  }
  return names;
}

bool ParseMethodName(std::string_view text, Method* out) {
  for (Method m : kMethods) {
    if (text == MethodName(m)) {
      *out = m;
      return true;
    }
  }
  return false;
}

Result<std::vector<Method>> ParseMethodNames(const std::vector<std::string>& names,
                                             std::string_view field) {
  std::vector<Method> out;
  for (const std::string& name : names) {
    Method m;
    if (!ParseMethodName(name, &m)) {
      return Status::InvalidInput(std::string(field) + ": unknown method '" + name + "' (" +
                                  MethodNames() + ")");
    }
    out.push_back(m);
  }
  return out;
}

namespace {

// What a method runs: its fastest plan, and its plan for a deadline.
struct MethodModel {
  planner::Figures fastest;
  std::function<planner::Figures(double deadline_s)> for_deadline;
};

// Among candidate (time, energy) plans, the one with the lowest energy for an
// iteration of `deadline_s`, counting the wait at blocking power after it.
planner::Figures BestFor(const std::vector<planner::Figures>& candidates, double idle_power,
                         double deadline_s) {
  const planner::Figures* best = nullptr;
  double best_energy = 0;
  for (const planner::Figures& c : candidates) {
    if (c.time_s > deadline_s * (1 + 1e-12)) continue;
    const double e = c.energy_j + idle_power * (deadline_s - c.time_s);
    if (best == nullptr || e < best_energy) {
      best = &c;
      best_energy = e;
    }
  }
  return best != nullptr ? *best : candidates.front();
}

planner::Figures Fastest(const std::vector<planner::Figures>& candidates) {
  planner::Figures f = candidates.front();
  for (const auto& c : candidates) {
    if (c.time_s < f.time_s || (c.time_s == f.time_s && c.energy_j < f.energy_j)) f = c;
  }
  return f;
}

MethodModel ModelOf(Method method, const planner::Frontier& frontier) {
  const planner::Problem& problem = frontier.problem();
  const double idle = problem.options.blocking_power_w * problem.num_gpus;
  std::vector<planner::Figures> candidates;
  switch (method) {
    case Method::kAllMax:
      candidates = {frontier.all_max};
      break;
    case Method::kPerseus:
      for (const auto& p : frontier.points()) candidates.push_back({p.time_s, p.energy_j});
      break;
    case Method::kEnvPipe:
      candidates = {RunEnvPipe(problem).figures};
      break;
    case Method::kZeusGlobal:
      for (const auto& plan : ZeusGlobalPlans(problem)) {
        candidates.push_back(planner::EvaluatePlan(problem, plan));
      }
      break;
    case Method::kZeusPerStage:
      candidates = {planner::EvaluatePlan(problem, ZeusPerStagePlan(problem))};
      break;
  }
  planner::Figures fastest = Fastest(candidates);
  if (method == Method::kPerseus) {
    // What Perseus runs: the frontier's plan for a deadline improved by the
    // discrete local search (planner/improve.h), as the coordinator serves it.
    const auto& p = frontier.points()[frontier.TMinIndex()];
    fastest = {p.time_s, p.energy_j};
    if (auto own = planner::PlanForDeadline(frontier, p.time_s)) fastest = own->result.figures;
    return {fastest, [&frontier, candidates, idle](double deadline_s) {
              planner::ImproveOptions options;
              options.objective = planner::DeadlineObjective::kAtDeadline;
              auto plan = planner::PlanForDeadline(frontier, deadline_s, options);
              return plan ? plan->result.figures : BestFor(candidates, idle, deadline_s);
            }};
  }
  return {fastest,
          [candidates, idle](double deadline_s) { return BestFor(candidates, idle, deadline_s); }};
}

}  // namespace

Result<std::vector<EmulationRow>> Emulate(const planner::Frontier& frontier,
                                          const EmulationOptions& options,
                                          std::vector<planner::Figures>* fastest) {
  if (options.pipelines < 1) return Status::InvalidInput("--pipelines must be at least 1");
  if (frontier.size() == 0) return Status::InvalidInput("the frontier is empty");
  for (double x : options.slowdowns) {
    if (!(x >= 1) || !std::isfinite(x)) {
      return Status::InvalidInput("--straggler-slowdown must be >= 1, not " + std::to_string(x));
    }
  }
  const planner::Problem& problem = frontier.problem();
  const double idle_power = problem.options.blocking_power_w * problem.num_gpus;
  const double others = options.pipelines - 1;

  MethodModel baseline = ModelOf(Method::kAllMax, frontier);
  std::vector<MethodModel> models;
  for (Method m : options.methods) models.push_back(ModelOf(m, frontier));
  if (fastest != nullptr) {
    fastest->clear();
    for (const MethodModel& model : models) fastest->push_back(model.fastest);
  }

  auto job = [&](const MethodModel& model, double slowdown) {
    MethodResult r;
    r.time_s = slowdown * model.fastest.time_s;
    r.plan = model.for_deadline(r.time_s);
    const double wait = std::max(0.0, r.time_s - r.plan.time_s);
    r.energy_j = slowdown * model.fastest.energy_j + others * (r.plan.energy_j + idle_power * wait);
    return r;
  };
  std::vector<EmulationRow> rows;
  for (double x : options.slowdowns) {
    EmulationRow row;
    row.slowdown = x;
    const MethodResult reference = job(baseline, x);
    for (const MethodModel& model : models) {
      MethodResult r = job(model, x);
      r.saving_pct = 100 * (reference.energy_j - r.energy_j) / reference.energy_j;
      row.methods.push_back(r);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Result<std::vector<double>> ParseSlowdowns(const std::vector<std::string>& specs) {
  std::vector<double> out;
  auto number = [](const std::string& text, double* value) {
    char* end = nullptr;
    *value = std::strtod(text.c_str(), &end);
    return !text.empty() && end == text.c_str() + text.size() && std::isfinite(*value);
  };
  for (const std::string& spec : specs) {
    const size_t c1 = spec.find(':');
    if (c1 == std::string::npos) {
      double v;
      if (!number(spec, &v)) {
        return Status::InvalidInput("--straggler-slowdown '" + spec + "' is not a number");
      }
      out.push_back(v);
      continue;
    }
    const size_t c2 = spec.find(':', c1 + 1);
    double a, b, step;
    if (c2 == std::string::npos || !number(spec.substr(0, c1), &a) ||
        !number(spec.substr(c1 + 1, c2 - c1 - 1), &b) || !number(spec.substr(c2 + 1), &step) ||
        !(step > 0) || b < a) {
      return Status::InvalidInput("--straggler-slowdown '" + spec +
                                  "' must be a number or START:STOP:STEP with STEP > 0");
    }
    const long count = std::lround(std::floor((b - a) / step + 1e-9)) + 1;
    if (count > 10000)
      return Status::InvalidInput("--straggler-slowdown '" + spec + "' has too many values");
    for (long k = 0; k < count; ++k) out.push_back(a + static_cast<double>(k) * step);
  }
  return out;
}

}  // namespace perseus::emulator
