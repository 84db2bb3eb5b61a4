// What the coordinator's request handlers share (coordinator_*.cc): replies,
// reading a request's JSON fields with their ranges, and small figures.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "nlohmann/json.hpp"
#include "perseus/planner/frontier_io.h"
#include "src/server/coordinator.h"

namespace perseus::server {

// The most plan mismatches one iteration report may carry, as
// client::Client::kMaxMismatches (keeps the job's sums far from overflow).
inline constexpr int64_t kMaxMismatches = 1000000000;
// The most a straggler's iteration may take, in T_min.
inline constexpr double kMaxSlowdown = 10;

Reply Ok(Outcome outcome, nlohmann::json body);
Reply FromStatus(const Status& s);  // kFailed with its message

// Parses a JSON body: an object, or an error reply.
std::optional<Reply> ParseObject(const std::string& body, nlohmann::json* out);
// An integer (number) field in [lo, hi]; an error reply naming it otherwise.
std::optional<Reply> IntField(const nlohmann::json& j, const char* name, int64_t lo, int64_t hi,
                              int64_t* out, bool required = true);
std::optional<Reply> NumberField(const nlohmann::json& j, const char* name, double lo, double hi,
                                 double* out, bool required = true);
// Every member of a request object must be one of `names`: a typo
// (stages_typo) is a 400 naming it, never silently ignored.
std::optional<Reply> OnlyFields(const nlohmann::json& j,
                                std::initializer_list<std::string_view> names,
                                const std::string& where = "");

std::string StateName(JobState s);
bool IsPhase(const std::string& phase);  // warmup | baseline | profiling | planned
double TMin(const planner::StoredFrontier& f);
// The iteration time a straggler imposes: given, or its slowdown times T_min.
double TPrime(const Straggler& s, double t_min_s);
// The time the other pipelines are planned for once `pipeline`'s entry is set
// to `change` (nullopt: cleared): the slowest straggler's T' (0 if none).
double TargetAfter(const std::map<int, Straggler>& stragglers, double t_min_s, int pipeline,
                   const std::optional<Straggler>& change);

}  // namespace perseus::server
