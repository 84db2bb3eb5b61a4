// PolishPlan (realized.h) in a PlanState (plan_state.h): after each move only
// the times it changes are recomputed, so a polish costs what its moves
// change, not a pass over the DAG per move. testing/polish_reference.h is
// the textbook version (everything recomputed after every move); the tests
// check that both make the same moves.
#include "perseus/planner/realized.h"
#include "src/planner/plan_state.h"

namespace perseus::planner {

Plan PolishPlan(const Problem& problem, Plan plan, double deadline_s, int64_t* work,
                int64_t max_work) {
  const int64_t n = problem.dag->num_nodes();
  const int64_t spent_before = work != nullptr ? *work : 0;
  const int64_t budget = work != nullptr ? max_work - spent_before : INT64_MAX;
  PlanState state(problem, std::move(plan));
  if (!state.Repair(deadline_s, budget)) {
    if (work != nullptr) *work += state.visits();
    return std::move(state).TakePlan();
  }
  state.Refine(deadline_s, /*all=*/true, budget);
  if (work != nullptr) *work += state.visits() + 2 * n;  // + FillSlack's two passes
  return FillSlack(problem, std::move(state).TakePlan(), deadline_s);
}

}  // namespace perseus::planner
