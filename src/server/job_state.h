// A coordinator job's life: one definition of its states and their names
// (the API's "state" field and the database's jobs.state column).
//
//   registering --(first profiling report or partial upload)--> profiling
//   registering | profiling --(whole profile)--> planning --> ready | failed
//
// A job is deleted from any state (DELETE /v1/jobs/{id} cancels its planning).
#pragma once

#include <optional>
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

// The state a name stands for; nullopt for any other text.
constexpr std::optional<JobState> ParseJobState(std::string_view name) {
  for (JobState s : {JobState::kRegistering, JobState::kProfiling, JobState::kPlanning,
                     JobState::kReady, JobState::kFailed}) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

// Whether the job still waits for (part of) its profile.
constexpr bool TakesProfile(JobState s) {
  return s == JobState::kRegistering || s == JobState::kProfiling;
}

}  // namespace perseus::server
