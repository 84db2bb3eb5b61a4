// The pipeline DAG: one node per computation (a forward or backward of one
// microbatch on one model stage, or an overlapped forward+backward pair that
// runs as one action), edges for every "must finish before" relation.
// Every schedule (1F1B, GPipe, interleaved, zero-bubble, imported) produces one;
// the planner consumes it and knows nothing else about schedules.
//
// Nodes are dense integer ids 0..n-1 in insertion order. Each computation runs
// on one GPU (pipeline rank); adding computations to a GPU in order records the
// GPU's program order, and Finalize() adds an edge between consecutive
// computations of a GPU. After Finalize() the DAG is immutable and offers
// successor/predecessor lists in contiguous storage and a topological order.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/profile.h"

namespace perseus::planner {

// One (model stage, instruction, microbatch) of a computation that has two:
// the backward half of an overlapped forward+backward (DualPipeV's
// OVERLAP_F_B in torch.distributed.pipelining). stage -1: no such part.
struct Part {
  int stage = -1;
  Instruction instruction = Instruction::kBackward;  // kBackward or kBackwardInput
  int microbatch = 0;
  auto operator<=>(const Part&) const = default;
};

struct Computation {
  Computation() = default;
  Computation(int gpu_, int stage_, Instruction instruction_, int microbatch_, Part overlap_ = {})
      : gpu(gpu_),
        stage(stage_),
        instruction(instruction_),
        microbatch(microbatch_),
        overlap(overlap_) {}

  int gpu = 0;    // pipeline rank that runs it
  int stage = 0;  // model stage (chunk) whose profile rows it uses
  Instruction instruction = Instruction::kForward;
  int microbatch = 0;
  // For an overlapped forward+backward, the backward half (the fields above
  // are then the forward half). One node, run back to back on one GPU.
  Part overlap;
  bool overlapped() const { return overlap.stage >= 0; }
};

// "F3@s1" style label, for messages and renderings; an overlapped pair is
// written as torch writes its halves: "(0F7;7B3)".
std::string ComputationLabel(const Computation& c);

class Dag {
 public:
  Dag() = default;

  // Appends a computation to the program order of c.gpu and returns its id.
  // REQUIRES: !finalized()
  int AddComputation(const Computation& c);
  // Adds a dependency: `from` must finish before `to` starts.
  // REQUIRES: !finalized(), both ids exist.
  void AddDependency(int from, int to);
  // Adds program-order edges, removes duplicate edges, builds the adjacency
  // arrays and a topological order. Fails (kInvalidInput) if the graph has a
  // cycle, naming a computation on it.
  Status Finalize();

  bool finalized() const { return finalized_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int num_gpus() const { return static_cast<int>(gpu_order_.size()); }
  int num_edges() const { return static_cast<int>(succ_.size()); }
  const Computation& node(int id) const { return nodes_[id]; }
  const std::vector<Computation>& nodes() const { return nodes_; }

  // REQUIRES: finalized()
  std::span<const int> successors(int id) const {
    return {succ_.data() + succ_begin_[id], succ_.data() + succ_begin_[id + 1]};
  }
  // Edges are numbered 0..num_edges()-1 in successor order: the k-th
  // successor of `id` is edge successor_edge_begin(id) + k.
  int successor_edge_begin(int id) const { return succ_begin_[id]; }
  std::span<const int> predecessors(int id) const {
    return {pred_.data() + pred_begin_[id], pred_.data() + pred_begin_[id + 1]};
  }
  const std::vector<int>& topological_order() const { return topo_; }
  // Length of the longest path with the given duration per node (the
  // iteration time when every computation starts as early as it can).
  // REQUIRES: finalized(), duration.size() == num_nodes()
  double Makespan(const std::vector<double>& duration) const;

  // Program order of each GPU: gpu_order()[g] lists node ids in execution order.
  const std::vector<std::vector<int>>& gpu_order() const { return gpu_order_; }

 private:
  bool finalized_ = false;
  std::vector<Computation> nodes_;
  std::vector<std::pair<int, int>> edges_;  // until Finalize()
  std::vector<std::vector<int>> gpu_order_;
  std::vector<int> succ_begin_, succ_, pred_begin_, pred_;
  std::vector<int> topo_;
};

}  // namespace perseus::planner
