// A DAG renumbered in topological order, for the frontier sweep: its passes
// walk the computations in that order, so with the numbering the same, each
// pass reads its arrays front to back instead of at the schedule's ids
// (which group computations by GPU or chunk). The sweep's steps do not
// depend on the numbering (the minimum cut it takes is the one with the
// smallest source side, and everything else it decides from values), so
// its frontier is the same; it maps every point's plan back.
#pragma once

#include <vector>

#include "perseus/planner/dag.h"

namespace perseus::planner {

struct TopologicalRelabel {
  Dag dag;                  // computation new_id[i] is the original's i
  std::vector<int> new_id;  // original id -> id in dag
  std::vector<int> old_id;  // id in dag -> original id
};

// Whether every dependency of `dag` goes from a lower id to a higher one.
bool IsTopologicallyNumbered(const Dag& dag);

// `dag` with its computations in its topological order (every dependency
// then goes to a higher id). REQUIRES: dag.finalized().
TopologicalRelabel RelabelTopologically(const Dag& dag);

}  // namespace perseus::planner
