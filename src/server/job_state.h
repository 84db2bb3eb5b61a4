// A coordinator job's life: one definition of its states and their names
// (the API's "state" field and the database's jobs.state column).
//
//   registering --(first profiling report or partial upload)--> profiling
//   registering | profiling --(whole profile)--> planning --> ready | failed
//
// A job is deleted from any state (DELETE /v1/jobs/{id} cancels its planning).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace perseus::server {

enum class JobState { kRegistering, kProfiling, kPlanning, kReady, kFailed };

constexpr std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kRegistering:
      return "registering";
    case JobState::kProfiling:
      return "profiling";
    case JobState::kPlanning:
      return "planning";
    case JobState::kReady:
      return "ready";
    case JobState::kFailed:
      return "failed";
  }
  return "failed";
}

// Every state, in the order of its life (and of /metrics' gauges).
inline constexpr JobState kJobStates[] = {JobState::kRegistering, JobState::kProfiling,
                                          JobState::kPlanning, JobState::kReady, JobState::kFailed};

// The state a name stands for; nullopt for any other text.
constexpr std::optional<JobState> ParseJobState(std::string_view name) {
  for (JobState s : kJobStates) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

// The names, for messages: "registering, profiling, planning, ready or failed".
inline std::string JobStateNames() {
  constexpr size_t n = sizeof(kJobStates) / sizeof(kJobStates[0]);
  std::string names;
  for (size_t k = 0; k < n; ++k) {
    if (k > 0) names += k + 1 == n ? " or " : ", ";
    names += JobStateName(kJobStates[k]);
  }
  return names;
}

// Whether the job still waits for (part of) its profile.
constexpr bool TakesProfile(JobState s) {
  return s == JobState::kRegistering || s == JobState::kProfiling;
}

}  // namespace perseus::server
