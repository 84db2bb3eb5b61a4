#include "src/planner/topological_relabel.h"

#include <cassert>

namespace perseus::planner {

bool IsTopologicallyNumbered(const Dag& dag) {
  for (int u = 0; u < dag.num_nodes(); ++u) {
    for (int v : dag.successors(u)) {
      if (v <= u) return false;
    }
  }
  return true;
}

TopologicalRelabel RelabelTopologically(const Dag& dag) {
  assert(dag.finalized());
  TopologicalRelabel out;
  out.new_id.assign(dag.num_nodes(), -1);
  // In topological order, each GPU's computations keep their program order.
  out.old_id.reserve(dag.num_nodes());
  for (int u : dag.topological_order()) {
    out.new_id[u] = out.dag.AddComputation(dag.node(u));
    out.old_id.push_back(u);
  }
  for (int u = 0; u < dag.num_nodes(); ++u) {
    for (int v : dag.successors(u)) out.dag.AddDependency(out.new_id[u], out.new_id[v]);
  }
  [[maybe_unused]] const Status finalized = out.dag.Finalize();  // acyclic as dag is
  assert(finalized.ok());
  return out;
}

}  // namespace perseus::planner
