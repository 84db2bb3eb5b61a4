#include "perseus/planner/improve.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "src/planner/plan_state.h"

namespace perseus::planner {
namespace {

// A move must lower the energy by more than this (relative), so that float
// noise never makes the search cycle.
constexpr double kRelativeGain = 1e-10;

bool Meets(const Figures& f, double deadline_s) {
  return f.time_s <= deadline_s + DeadlineTolerance(deadline_s);
}

}  // namespace

double ObjectiveEnergy(const Problem& problem, const Figures& figures, double deadline_s,
                       DeadlineObjective objective) {
  if (objective == DeadlineObjective::kOwnTime) return figures.energy_j;
  const double idle_w = problem.options.blocking_power_w * problem.num_gpus;
  return figures.energy_j + idle_w * std::max(0.0, deadline_s - figures.time_s);
}

ImproveResult ImprovePlan(const Problem& problem, Plan plan, double deadline_s,
                          const ImproveOptions& options) {
  const int n = problem.dag->num_nodes();
  ImproveResult r;
  auto evaluate = [&](const Plan& p) {
    r.work += n;
    return EvaluatePlan(problem, p);
  };
  auto objective = [&](const Figures& f) {
    return ObjectiveEnergy(problem, f, deadline_s, options.objective);
  };
  // Polishing fills slack up to D, which may cost more than it saves when the
  // iteration ends at its own time: then the plan as given is the start.
  const Figures given = evaluate(plan);
  r.plan = PolishPlan(problem, plan, deadline_s, &r.work, options.max_work);
  r.figures = evaluate(r.plan);
  r.objective_j = objective(r.figures);
  bool kept_given = false;
  if (Meets(given, deadline_s) &&
      (!Meets(r.figures, deadline_s) || objective(given) < r.objective_j)) {
    kept_given = true;
    r.plan = std::move(plan);
    r.figures = given;
    r.objective_j = objective(given);
  }
  if (!Meets(r.figures, deadline_s)) return r;

  // The moves, in a PlanState: a candidate changes the state, is repaired
  // and refined there, and is undone unless it lowers the objective. A
  // polished plan has no refine move left, so a candidate's refine only
  // looks at what the candidate changed; a plan kept as given (not filled
  // up to D) is refined from every computation, as a fresh polish would.
  bool settled = !kept_given;
  PlanState state(problem, std::move(r.plan));
  const int64_t visits_before = state.visits();
  auto spent = [&] { return r.work + state.visits() - visits_before; };
  auto finish = [&](bool budget_spent) {
    r.work = spent();
    r.budget_spent = budget_spent;
    r.plan = state.plan();
    return r;
  };
  for (bool improved = true; improved;) {
    improved = false;
    for (int i = 0; i < n; ++i) {
      const int options_of_i = static_cast<int>(problem.set(i).options.size());
      for (int step : {-1, +1, -2, +2}) {  // faster (options are fastest first) or slower
        const int k = state.plan()[i] + step;
        if (k < 0 || k >= options_of_i) continue;
        if (spent() >= options.max_work) return finish(true);
        state.Mark();
        state.SetOption(i, k);
        if (!state.Repair(deadline_s, state.visits() + options.max_work - spent())) {
          state.Undo();
          if (spent() >= options.max_work) return finish(true);
          continue;
        }
        if (!state.Refine(deadline_s, /*all=*/!settled,
                          state.visits() + options.max_work - spent())) {
          state.Undo();
          return finish(true);
        }
        const Figures f = state.figures();
        const double e = objective(f);
        if (Meets(f, deadline_s) && e < r.objective_j - kRelativeGain * std::abs(r.objective_j)) {
          state.Commit();
          r.figures = state.figures();  // summed afresh by Commit
          r.objective_j = objective(r.figures);
          ++r.moves;
          improved = true;
          settled = true;
        } else {
          state.Undo();
        }
      }
    }
  }
  return finish(false);
}

std::optional<DeadlinePlan> PlanForDeadline(const Frontier& frontier, double deadline_s,
                                            const ImproveOptions& options) {
  return PlanForDeadline(
      frontier.problem(), frontier.points(), [&](size_t k) { return frontier.PlanAt(k); },
      deadline_s, options);
}

std::optional<DeadlinePlan> PlanForDeadline(const Problem& problem,
                                            const std::vector<FrontierPoint>& points,
                                            const std::function<Plan(size_t)>& plan_at,
                                            double deadline_s, const ImproveOptions& options) {
  const double tolerance = DeadlineTolerance(deadline_s);
  // The best point that meets D, and the fastest one that does not.
  std::optional<size_t> best, slower;
  double best_objective = 0;
  for (size_t k = 0; k < points.size(); ++k) {
    const Figures f{points[k].time_s, points[k].energy_j};
    if (f.time_s <= deadline_s + tolerance) {
      const double e = ObjectiveEnergy(problem, f, deadline_s, options.objective);
      if (!best || e < best_objective) {
        best = k;
        best_objective = e;
      }
    } else if (!slower || f.time_s < points[*slower].time_s) {
      slower = k;
    }
  }
  if (!best) return std::nullopt;
  DeadlinePlan out{ImprovePlan(problem, plan_at(*best), deadline_s, options), *best};
  if (slower) {
    ImproveOptions rest = options;
    rest.max_work = std::max<int64_t>(0, options.max_work - out.result.work);
    ImproveResult other = ImprovePlan(problem, plan_at(*slower), deadline_s, rest);
    if (Meets(other.figures, deadline_s) && other.objective_j < out.result.objective_j) {
      other.work += out.result.work;
      out = {std::move(other), *slower};
    } else {
      out.result.work += other.work;
      out.result.budget_spent = out.result.budget_spent || other.budget_spent;
    }
  }
  return out;
}

Frontier WithImprovedEnds(Frontier frontier, const ImproveOptions& options) {
  ImproveOptions own = options;
  own.objective = DeadlineObjective::kOwnTime;
  const double t_min = frontier.points()[frontier.TMinIndex()].time_s;
  const double t_star = frontier.points()[frontier.TStarIndex()].time_s;
  // Both searches run on the frontier as given; their plans are added after.
  std::vector<std::pair<FrontierPoint, Plan>> improved;
  for (double deadline : {std::max(t_min, frontier.all_max.time_s), t_star}) {
    auto found = PlanForDeadline(frontier, deadline, own);
    if (!found) continue;
    FrontierPoint point = frontier.points()[found->base_point];
    if (found->result.figures.energy_j >= point.energy_j &&
        found->result.figures.time_s >= point.time_s) {
      continue;  // nothing gained over the point it started from
    }
    point.time_s = found->result.figures.time_s;
    point.energy_j = found->result.figures.energy_j;
    improved.emplace_back(point, std::move(found->result.plan));
  }
  if (!improved.empty()) {
    for (const auto& [point, plan] : improved) frontier.Append(point, plan);
    const double solve_seconds = frontier.solve_seconds;
    frontier = frontier.ParetoOnly();
    frontier.solve_seconds = solve_seconds;
  }
  (void)frontier.IndexForDeadline(0);
  return frontier;
}

}  // namespace perseus::planner
