// The coordinator's job requests: create, list, get, delete; ranks; profiles.
#include <algorithm>
#include <cmath>
#include <set>

#include "perseus/common/json_text.h"
#include "perseus/common/median.h"
#include "src/server/coordinator.h"
#include "src/server/request_fields.h"

namespace perseus::server {

using nlohmann::json;

Reply Coordinator::CreateJob(const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::string field;
  auto config = ParseJobConfig(j, &field);
  if (!config.ok()) return Error(Outcome::kInvalid, config.status().message(), field);
  if (Status s = job::CheckWorkLimits(config->spec, options_.limits); !s.ok()) {
    return Error(Outcome::kInvalid, s.message(), s.field());
  }
  std::lock_guard<std::mutex> lock(mu_);
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  auto inserted = store_->InsertJob(JsonText(config->ToJson()), JobRow{}.Values());
  if (!inserted.ok()) return FromStatus(inserted.status());
  const int64_t id = *inserted;
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  Job job;
  job.id = id;
  job.config = *config;
  job.state = JobState::kRegistering;
  jobs_[id] = std::move(job);
  if (log_) log_("job " + std::to_string(id) + " created: " + config->name);
  return Ok(Outcome::kCreated, {{"job_id", id}});
}

Reply Coordinator::GetJob(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  return Ok(Outcome::kOk, JobJson(job));
}

namespace {

// What GET /v1/jobs lists of a job and its own view begins with.
json JobSummary(const Job& job) {
  json row = {{"job_id", job.id},
              {"state", StateName(job.state)},
              {"progress", job.progress},
              {"ranks_registered", job.ranks.size()},
              {"ranks_expected", job.config.ranks()}};
  if (!job.reason.empty()) row["reason"] = job.reason;
  return row;
}

// The first profile row whose clock one of `ranks` does not support, and that
// rank: each distinct frequency is checked once, at its first row, against
// every rank in rank order. Both arrival orders use it: a profile checked
// against the ranks registered, and a late rank against the profile.
struct UnsupportedClock {
  const planner::Measurement* row = nullptr;
  int rank = 0;
};
std::optional<UnsupportedClock> FirstUnsupportedClock(const planner::Profile& profile,
                                                      const std::map<int, RankInfo>& ranks) {
  std::set<int> checked;
  for (const auto& [key, rows] : profile.measurements) {
    for (const auto& m : rows) {
      if (!checked.insert(m.frequency_mhz).second) continue;
      for (const auto& [r, info] : ranks) {
        const auto& allowed = info.frequencies_mhz;
        if (std::find(allowed.begin(), allowed.end(), m.frequency_mhz) == allowed.end()) {
          return UnsupportedClock{&m, r};
        }
      }
    }
  }
  return std::nullopt;
}

// One rank's measurement upload (JSON), validated alone: its rows as profile
// CSV lines at the rank's (stage, tp_rank), and its measured blocking power.
struct RankUpload {
  int rank = 0;
  std::pair<int, int> key;  // (stage, tp_rank)
  std::string rows;         // CSV lines, without the header
  double blocking_w = -1;   // -1: not measured
};
const char kMeasurementsHeader[] = "stage,instruction,frequency,time,energy,tp_rank\n";

// A rank's mistake is that rank's 400, naming its own entry ("rank 3's
// measurements[7] ...").
std::optional<Reply> ReadRankUpload(const Job& job, const std::string& body, RankUpload* out) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  if (auto e = OnlyFields(j, {"rank", "blocking_power_w", "measurements"})) return *e;
  int64_t rank = 0;
  if (auto e = IntField(j, "rank", 0, job.config.ranks() - 1, &rank)) return *e;
  auto info = job.ranks.find(static_cast<int>(rank));
  if (info == job.ranks.end()) {
    return Error(Outcome::kConflict,
                 "rank " + std::to_string(rank) + " is not registered (register it first)", "rank");
  }
  if (auto e = NumberField(j, "blocking_power_w", 0, 1e5, &out->blocking_w, false)) return *e;
  auto rows = j.find("measurements");
  if (rows == j.end() || !rows->is_array() || rows->empty() || rows->size() > 100000) {
    return Error(Outcome::kInvalid,
                 "field 'measurements' must be a non-empty array (at most 100000 entries)",
                 "measurements");
  }
  const std::string who = "rank " + std::to_string(rank) + "'s ";
  std::string text, alone;  // alone: the same rows as stage 0, tp_rank 0
  std::map<std::pair<planner::Instruction, int64_t>, size_t> seen;
  for (size_t k = 0; k < rows->size(); ++k) {
    const json& m = (*rows)[k];
    const std::string where = "measurements[" + std::to_string(k) + "]";
    if (!m.is_object())
      return Error(Outcome::kInvalid, who + where + " must be an object", "measurements");
    if (auto e = OnlyFields(m, {"instruction", "frequency_mhz", "time_s", "energy_j"},
                            " in " + who + where)) {
      return *e;
    }
    auto instr = m.find("instruction");
    planner::Instruction parsed;
    if (instr == m.end() || !instr->is_string() ||
        !planner::ParseInstruction(instr->get<std::string>(), &parsed)) {
      return Error(Outcome::kInvalid,
                   who + where +
                       ": 'instruction' must be forward, backward, backward_input or "
                       "backward_weight",
                   "measurements");
    }
    int64_t mhz = 0;
    double time_s = 0, energy_j = 0;
    if (auto e = IntField(m, "frequency_mhz", 1, 100000, &mhz)) return *e;
    const auto& allowed = info->second.frequencies_mhz;
    if (std::find(allowed.begin(), allowed.end(), mhz) == allowed.end()) {
      return Error(Outcome::kInvalid,
                   who + where + ": " + std::to_string(mhz) + " MHz is not among rank " +
                       std::to_string(rank) + "'s supported frequencies",
                   "frequency_mhz");
    }
    if (auto e = NumberField(m, "time_s", 1e-9, 1e6, &time_s)) return *e;
    if (auto e = NumberField(m, "energy_j", 0, 1e12, &energy_j)) return *e;
    auto [previous, fresh] = seen.emplace(std::make_pair(parsed, mhz), k);
    if (!fresh) {
      return Error(Outcome::kInvalid,
                   who + where + " repeats " + std::string(planner::InstructionName(parsed)) +
                       " at " + std::to_string(mhz) + " MHz (measurements[" +
                       std::to_string(previous->second) + "])",
                   "measurements");
    }
    const std::string columns = std::string(planner::InstructionName(parsed)) + "," +
                                std::to_string(mhz) + "," + json(time_s).dump() + "," +
                                json(energy_j).dump() + ",";
    text += std::to_string(info->second.pp_rank) + "," + columns +
            std::to_string(info->second.tp_rank) + "\n";
    alone += "0," + columns + "0\n";
  }
  if (auto parsed = planner::ParseProfileCsv(kMeasurementsHeader + alone, "measurements");
      !parsed.ok()) {
    // "measurements:L: ..." names line L, which is measurements[L - 2].
    std::string message = parsed.status().message();
    const size_t colon = message.find(':', 13);
    if (message.rfind("measurements:", 0) == 0 && colon != std::string::npos) {
      int64_t line = 0;
      if (ParseCount(message.substr(13, colon - 13), &line) && line >= 2) {
        message = "measurements[" + std::to_string(line - 2) + "]" + message.substr(colon);
      }
    }
    return Error(Outcome::kInvalid, who + message, "measurements");
  }
  out->rank = static_cast<int>(rank);
  out->key = {info->second.pp_rank, info->second.tp_rank};
  out->rows = std::move(text);
  return std::nullopt;
}

}  // namespace

Reply Coordinator::ListJobs(const std::string& state_name) {
  std::optional<JobState> only;
  if (!state_name.empty()) {
    only = ParseJobState(state_name);
    if (!only) {
      return Error(Outcome::kInvalid, "query parameter 'state' must be " + JobStateNames(),
                   "state");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  json jobs = json::array();
  for (const auto& [id, job] : jobs_) {
    if (only && job.state != *only) continue;
    json row = JobSummary(job);
    row["name"] = job.config.name;
    jobs.push_back(std::move(row));
  }
  return Ok(Outcome::kOk, {{"jobs", std::move(jobs)}});
}

Reply Coordinator::DeleteJob(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (Status s = store_->DeleteJob(id); !s.ok()) return FromStatus(s);
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  // Committed: now memory. A running planning stops at its next step and
  // finds no job to store into.
  if (job->cancel) job->cancel->store(true);
  queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
  jobs_.erase(id);
  idle_cv_.notify_all();
  if (log_) log_("job " + std::to_string(id) + " deleted");
  return Ok(Outcome::kOk, {{"job_id", id}, {"deleted", true}});
}

json Coordinator::JobJson(const Job* job) const {
  json body = JobSummary(*job);
  body["config"] = job->config.ToJson();
  body["warnings"] = job->warnings;
  if (auto blocking = BlockingPower(*job)) {
    body["blocking_power"] = {{"w", blocking->watts}, {"source", blocking->source}};
  }
  if (!job->profiling_progress.empty() || job->state == JobState::kProfiling) {
    // In-job profiling: the stages (x tensor-parallel ranks) uploaded, and every
    // rank's progress as its profiling iteration reports said.
    json ranks = json::object();
    for (const auto& [r, p] : job->profiling_progress) ranks[std::to_string(r)] = p;
    body["profiling"] = {{"stages_measured", job->measured.size()},
                         {"stages_expected", job->config.spec.stages * job->config.spec.tp},
                         {"progress_by_rank", ranks}};
  }
  if (job->frontier != nullptr) {
    const auto& points = job->frontier->points();
    const auto& fastest = points[job->frontier->TMinIndex()];
    // Energies here are one pipeline's (the frontier's scope); the job's are
    // dp times that, given beside them.
    const double dp = job->config.spec.dp;
    body["frontier"] = {{"energy_scope", "pipeline"},
                        {"points", points.size()},
                        {"t_min_s", fastest.time_s},
                        {"t_min_energy_j", fastest.energy_j},
                        {"t_min_job_energy_j", fastest.energy_j * dp},
                        {"all_max_time_s", job->all_max_time_s},
                        {"all_max_energy_j", job->all_max_energy_j},
                        {"all_max_job_energy_j", job->all_max_energy_j * dp},
                        {"solve_seconds", job->solve_seconds}};
    json pipelines = json::array();
    for (size_t p = 0; p < job->pipelines.size(); ++p) {
      pipelines.push_back({{"pipeline", p},
                           {"version", job->pipelines[p].version},
                           {"target_time_s", job->pipelines[p].target_time_s},
                           {"frontier_point", job->pipelines[p].point},
                           {"energy_j", job->pipelines[p].energy_j},
                           {"straggler", job->stragglers.count(static_cast<int>(p)) > 0}});
    }
    body["pipelines"] = pipelines;
  }
  json stragglers = json::array();
  for (const auto& [p, s] : job->stragglers) {
    // Stragglers exist only on planned jobs (AddStraggler requires `ready`).
    stragglers.push_back(
        {{"pipeline", p},
         {"slowdown", s.slowdown},
         {"iteration_time", s.iteration_time_s},
         {"source", s.detected ? "detected" : "manual"},
         {"t_prime_s", job->frontier != nullptr ? TPrime(s, TMin(*job->frontier)) : 0.0}});
  }
  body["stragglers"] = stragglers;
  return body;
}

Reply Coordinator::RegisterRank(int64_t id, const std::string& body) {
  json j;
  if (auto error = ParseObject(body, &j)) return *error;
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  const JobConfig& c = job->config;
  if (auto e =
          OnlyFields(j, {"rank", "pp_rank", "dp_rank", "tp_rank", "gpu_name", "frequencies_mhz"})) {
    return *e;
  }
  int64_t rank = 0, pp = 0, dp = 0, tp = 0;
  if (auto e = IntField(j, "rank", 0, c.ranks() - 1, &rank)) return *e;
  if (auto e = IntField(j, "pp_rank", 0, c.spec.stages - 1, &pp)) return *e;
  if (auto e = IntField(j, "dp_rank", 0, c.spec.dp - 1, &dp)) return *e;
  if (auto e = IntField(j, "tp_rank", 0, c.spec.tp - 1, &tp, false)) return *e;
  RankInfo info;
  info.rank = static_cast<int>(rank);
  info.pp_rank = static_cast<int>(pp);
  info.dp_rank = static_cast<int>(dp);
  info.tp_rank = static_cast<int>(tp);
  auto name = j.find("gpu_name");
  if (name != j.end() && !name->is_string())
    return Error(Outcome::kInvalid, "field 'gpu_name' must be a string", "gpu_name");
  if (name != j.end()) info.gpu_name = name->get<std::string>();
  auto freqs = j.find("frequencies_mhz");
  if (freqs == j.end() || !freqs->is_array() || freqs->empty() || freqs->size() > 4096) {
    return Error(Outcome::kInvalid,
                 "field 'frequencies_mhz' must be a non-empty array of MHz values",
                 "frequencies_mhz");
  }
  for (const json& f : *freqs) {
    if (!f.is_number_integer() || f.get<int64_t>() <= 0 || f.get<int64_t>() > 100000) {
      return Error(Outcome::kInvalid, "field 'frequencies_mhz' must hold positive integers",
                   "frequencies_mhz");
    }
    info.frequencies_mhz.push_back(f.get<int>());
  }
  std::sort(info.frequencies_mhz.rbegin(), info.frequencies_mhz.rend());
  info.frequencies_mhz.erase(std::unique(info.frequencies_mhz.begin(), info.frequencies_mhz.end()),
                             info.frequencies_mhz.end());
  auto existing = job->ranks.find(info.rank);
  if (existing != job->ranks.end()) {
    if (existing->second == info)
      return Ok(Outcome::kOk, {{"rank", info.rank}, {"registered", true}});
    return Error(Outcome::kConflict,
                 "rank " + std::to_string(info.rank) + " is already registered with different data",
                 "rank");
  }
  // One rank per (pp, dp, tp) position.
  for (const auto& [r, other] : job->ranks) {
    if (other.pp_rank == info.pp_rank && other.dp_rank == info.dp_rank &&
        other.tp_rank == info.tp_rank) {
      return Error(Outcome::kConflict,
                   "rank " + std::to_string(r) + " already holds position pp_rank " +
                       std::to_string(info.pp_rank) + ", dp_rank " + std::to_string(info.dp_rank) +
                       ", tp_rank " + std::to_string(info.tp_rank),
                   "pp_rank");
    }
  }
  // A rank that arrives after the profile: the plan's clocks must be its GPU's.
  if (!job->profile_csv.empty()) {
    auto profile = planner::ParseProfileCsv(job->profile_csv, "profile");
    if (!profile.ok()) return FromStatus(profile.status());  // it parsed when it came
    if (auto bad = FirstUnsupportedClock(*profile, {{info.rank, info}})) {
      return Error(Outcome::kInvalid,
                   "the job's profile uses " + std::to_string(bad->row->frequency_mhz) +
                       " MHz, which is not among rank " + std::to_string(info.rank) +
                       "'s frequencies_mhz",
                   "frequencies_mhz");
    }
  }
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (Status s = store_->InsertRank(id, info.rank, JsonText(info.ToJson())); !s.ok()) {
    return FromStatus(s);
  }
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  job->ranks[info.rank] = info;
  return Ok(Outcome::kOk, {{"rank", info.rank}, {"registered", true}});
}

Reply Coordinator::PutProfile(int64_t id, const std::string& content_type,
                              const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  Job* job = Find(id);
  if (job == nullptr) return Error(Outcome::kNotFound, "no job " + std::to_string(id));
  if (job->state == JobState::kPlanning || job->state == JobState::kReady) {
    return Error(Outcome::kConflict, "job " + std::to_string(id) +
                                         " already has its profile (state " +
                                         StateName(job->state) + ")");
  }
  // Everything is decided first; the database and then memory change only
  // once it is accepted (a rejected upload changes nothing).
  JobRow row = JobRow::Of(*job);
  const bool csv = content_type.rfind("text/csv", 0) == 0;
  const bool was_profiling = job->state == JobState::kProfiling;
  bool complete = csv;
  std::optional<RankUpload> upload;  // a rank's measurements (JSON)
  auto measured = job->measured;
  auto measured_blocking = job->measured_blocking_w;
  std::optional<planner::Profile> whole;             // the complete profile, parsed
  std::shared_ptr<const job::PreparedJob> prepared;  // its problem, once complete
  if (csv) {
    auto profile = planner::ParseProfileCsv(body, "profile");
    if (!profile.ok()) return Error(Outcome::kInvalid, profile.status().message(), "profile");
    // Every frequency the plan may use must be one the ranks' GPUs support.
    if (auto bad = FirstUnsupportedClock(*profile, job->ranks)) {
      return Error(Outcome::kInvalid,
                   "profile:" + std::to_string(bad->row->line) + ": " +
                       std::to_string(bad->row->frequency_mhz) + " MHz is not among rank " +
                       std::to_string(bad->rank) + "'s supported frequencies",
                   "frequency");
    }
    if (!job->config.blocking_power_given) {
      return Error(Outcome::kInvalid,
                   "job " + std::to_string(id) +
                       " has no blocking_power_w and a CSV profile carries none: give "
                       "blocking_power_w when creating the job, or upload each rank's "
                       "measurements (JSON) with its measured blocking_power_w",
                   "blocking_power_w");
    }
    row.profile_csv = body;
    whole = std::move(profile).value();
  } else {
    // JSON: one rank's measurements of its stage, validated alone; a rank may
    // upload again until the profile is complete, replacing its rows.
    upload.emplace();
    if (auto error = ReadRankUpload(*job, body, &*upload)) return *error;
    measured[upload->key] = upload->rows;
    if (upload->blocking_w >= 0) {
      measured_blocking[upload->key] = upload->blocking_w;
    } else {
      measured_blocking.erase(upload->key);
    }
    // Complete once every stage (and tensor-parallel rank) has measurements.
    complete = static_cast<int>(measured.size()) == job->config.spec.stages * job->config.spec.tp;
    if (!complete) {
      row.state = JobState::kProfiling;
    } else {
      std::string assembled = kMeasurementsHeader;
      for (const auto& [k, rows_text] : measured) assembled += rows_text;
      auto profile = planner::ParseProfileCsv(assembled, "measurements");
      if (!profile.ok()) {
        return Error(
            Outcome::kInvalid,
            "rank " + std::to_string(upload->rank) +
                "'s upload completes a profile that does not parse: " + profile.status().message(),
            "measurements");
      }
      row.profile_csv = assembled;
      whole = std::move(profile).value();
    }
  }
  if (complete) {
    // The whole profile: it must plan within the limits (a 400 now, not a
    // job that fails or exhausts the server later).
    job::JobSpec spec = job->config.spec;
    const auto blocking = BlockingPower(job->config, measured_blocking);
    spec.blocking_power_w = blocking ? blocking->watts : 0;
    auto checked = job::PrepareJob(spec, std::move(*whole), options_.limits);
    if (!checked.ok()) {
      // A job field at fault (unit_time too small for it) is named; else the profile.
      const Status& st = checked.status();
      return Error(Outcome::kInvalid, "the profile cannot be planned for this job: " + st.message(),
                   st.field().empty() ? "profile" : st.field());
    }
    prepared = std::make_shared<const job::PreparedJob>(std::move(checked).value());
    row.warnings = prepared->warnings;
    row.state = JobState::kPlanning;
    row.reason.clear();
    row.planning_attempts = 0;
  }
  JobStore::Transaction tx(*store_);
  if (!tx.begun().ok()) return FromStatus(tx.begun());
  if (upload) {
    Status s = store_->PutMeasurement(
        id, {upload->key.first, upload->key.second, upload->rows, upload->blocking_w});
    if (!s.ok()) return FromStatus(s);
  }
  if (Status s = SaveJobRow(id, row); !s.ok()) return FromStatus(s);
  if (Status s = tx.Commit(); !s.ok()) return FromStatus(s);
  // Committed: memory follows.
  row.ApplyTo(job);
  job->measured = std::move(measured);
  job->measured_blocking_w = std::move(measured_blocking);
  if (!complete) {
    if (!was_profiling) job->progress = 0;
    return Ok(Outcome::kAccepted,
              {{"state", StateName(job->state)},
               {"stages_measured", job->measured.size()},
               {"stages_expected", job->config.spec.stages * job->config.spec.tp}});
  }
  job->progress = 0;
  job->prepared = std::move(prepared);
  if (log_) {
    for (const std::string& w : job->warnings)
      log_("job " + std::to_string(id) + ": warning: " + w);
  }
  Enqueue(id);
  return Ok(Outcome::kAccepted, {{"state", StateName(job->state)}, {"warnings", job->warnings}});
}

std::optional<BlockingPowerUsed> BlockingPower(
    const JobConfig& config, const std::map<std::pair<int, int>, double>& measured_w) {
  if (config.blocking_power_given) return BlockingPowerUsed{config.spec.blocking_power_w, "config"};
  if (measured_w.empty()) return std::nullopt;
  std::vector<double> watts;
  for (const auto& [key, w] : measured_w) watts.push_back(w);
  return BlockingPowerUsed{Median(watts), "measured"};
}

std::optional<BlockingPowerUsed> BlockingPower(const Job& job) {
  return BlockingPower(job.config, job.measured_blocking_w);
}

}  // namespace perseus::server
