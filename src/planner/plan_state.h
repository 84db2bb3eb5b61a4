// A plan with its longest-path times kept up to date one change at a time,
// and undoable: the state PolishPlan and ImprovePlan (realized.h, improve.h)
// search in, so that a move costs what it changes, not a pass over the DAG.
//
// Times: earliest starts (forward) and tails (the longest path after a
// computation finishes; its latest finish against a deadline D is D - tail).
// After a computation's time changes, its descendants' starts and its
// ancestors' tails are recomputed from their neighbours in topological order,
// propagating only while values change. A recomputed value is a max over the
// same sums a full pass takes, so every value is the full pass's bit for bit
// (timing.h's EarliestStarts, LongestTails), and so is every choice made
// from them.
//
// Moves (the textbook versions, recomputing everything after every move, are
// in testing/polish_reference.h; the tests check the same moves are made):
//  - Repair: while the iteration time exceeds D, speed up the critical
//    computation (on a longest path, within eps) with the lowest energy cost
//    per second saved, the lowest index among equal ones. Critical
//    computations are found from the sources along tight dependencies.
//  - Refine: slow down the computation whose room (D - tail - earliest
//    start) buys the largest effective-energy saving, the lowest index among
//    equal ones, until none fits. Only computations whose room or option
//    changed can gain a move, so a refine after a few changes only looks at
//    those.
//
// Undo: Mark() starts a journal of every change; Undo() restores the state
// at the mark exactly, Commit() keeps the changes.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "perseus/planner/realized.h"

namespace perseus::planner {

class PlanState {
 public:
  PlanState(const Problem& problem, Plan plan);

  const Plan& plan() const { return plan_; }
  Plan TakePlan() && { return std::move(plan_); }
  // The realized iteration time (the latest finish of a computation nobody
  // waits for).
  double makespan() const;
  // Realized figures from running sums (updated by every change; Commit
  // recomputes them in index order, as EvaluatePlan sums).
  Figures figures() const;
  // Computations visited so far (recomputed times, moves considered):
  // ImprovePlan's work budget.
  int64_t visits() const { return visits_; }

  // Gives computation i option k (times and sums updated).
  void SetOption(int i, int k);
  // Repair against D (see above; eps = DeadlineTolerance(D)), until it
  // meets D + eps or visits() reaches max_visits. Returns whether the
  // iteration now meets D + eps (false: every critical computation is at its
  // fastest, or the budget ran out).
  bool Repair(double deadline_s, int64_t max_visits = INT64_MAX);
  // Refine against D from the moves of every computation (`all`) or of
  // those changed since Mark() (or since construction or the last Commit or
  // Undo), until no move fits or visits() reaches max_visits. Returns
  // whether it finished (no move left).
  bool Refine(double deadline_s, bool all, int64_t max_visits = INT64_MAX);

  void Mark();
  void Undo();
  void Commit();

 private:
  void Forward(int b);
  void Backward(int b);
  void Touch(int i);  // i's option, start or tail changed
  template <typename Heap>
  void Queue(int v, Heap* heap) {
    if (queued_[v]) return;
    queued_[v] = 1;
    heap->push(position_[v]);
  }

  const Problem& problem_;
  const Dag& dag_;
  Plan plan_;
  std::vector<double> t_, es_, tail_;
  std::vector<int> position_, sinks_, sources_;
  double sum_energy_ = 0, sum_time_ = 0;
  int64_t visits_ = 0;
  std::vector<char> queued_;
  std::priority_queue<int, std::vector<int>, std::greater<>> forward_;  // topological positions
  std::priority_queue<int> backward_;
  // Journal since Mark: what each change overwrote; sums at the mark.
  enum class Kind { kOption, kStart, kTail };
  struct Entry {
    Kind kind;
    int node;
    double value;  // the old option (kOption), start or tail
  };
  void Journal(Kind kind, int node, double old_value);
  bool journaling_ = false;
  // At most one entry per (computation, kind) since the mark: O(V).
  std::vector<Entry> journal_;
  std::vector<uint32_t> journaled_in_;  // per (computation, kind): the mark it was journaled under
  double marked_energy_ = 0, marked_time_ = 0;
  std::vector<int> changed_;          // since Mark (each once; option, start or tail)
  std::vector<int> touched_;          // changed by the last SetOption
  std::vector<uint32_t> changed_in_;  // per computation: the mark it was last changed under
  uint32_t mark_ = 1;
  // Refine's moves: per computation, the version of its latest offer.
  std::vector<int> version_;
  std::vector<int> stack_, seen_;
  int round_ = 0;
  // Refine's heap of offered moves (kept to reuse its storage).
  struct Move {
    double gain;
    int node, option, version;
  };
  std::vector<Move> moves_;
};

}  // namespace perseus::planner
