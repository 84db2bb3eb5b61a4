// Profile transformations for parallel layouts and schedules. Each returns a
// new profile; those that derive data the file does not hold append a
// human-readable note to *notes, which the CLI prints and puts in its JSON.
#pragma once

#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/profile.h"

namespace perseus::planner {

// Tensor parallelism of degree tp: a stage runs on tp GPUs in lockstep, so one
// computation of the stage takes the longest of its ranks' times and costs the
// sum of their energies. With a tp_rank column, every (stage, instruction,
// frequency) must have rows for ranks 0..tp-1 exactly; without one, the rows
// are for one GPU and energies are multiplied by tp (times unchanged).
// The result has no tp_rank column.
Result<Profile> CombineTensorParallel(const Profile& profile, int tp,
                                      std::vector<std::string>* notes);

// For schedules with a split backward (zero bubble): every (stage) that has a
// `backward` but no `backward_input`/`backward_weight` rows gets both, each
// with half the backward's time and energy at every frequency. (For a
// transformer layer the input and the weight gradient are each one matrix
// multiply per forward one, so B = I + W with I ~ W; Qi et al., 2024.)
Profile SplitBackward(const Profile& profile, std::vector<std::string>* notes);

// For interleaved schedules with `chunks_per_stage` V model chunks per GPU: a
// profile of S stages becomes one of S*V model chunks. Stage p (a contiguous
// 1/S of the layers) is cut into V equal chunks p*V .. p*V+V-1, each with 1/V
// of the stage's time and energy at every frequency. (Chunk k of the model is
// then run by GPU k mod S, as Megatron-LM places virtual stages.)
Profile SplitStagesIntoChunks(const Profile& profile, int chunks_per_stage,
                              std::vector<std::string>* notes);

// A profile of `num_stages` stages made by repeating the given one's stages:
// stage k gets the rows of stage k mod S (for benchmarks of large pipelines).
Profile RepeatStages(const Profile& profile, int num_stages);

}  // namespace perseus::planner
