#include "src/server/job_config.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "perseus/schedules/schedule_csv.h"

namespace perseus::server {
namespace {

using nlohmann::json;

Status Bad(std::string* field, const std::string& name, const std::string& what) {
  *field = name;
  return Status::InvalidInput("field '" + name + "' " + what);
}

template <typename T>
Status Get(const json& j, const char* name, bool required, T* out, std::string* field) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    return required ? Bad(field, name, "is required") : Status::Ok();
  }
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return Bad(field, name, "must be true or false");
    *out = it->get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return Bad(field, name, "must be a string");
    *out = it->get<std::string>();
  } else if constexpr (std::is_same_v<T, int>) {
    if (!it->is_number_integer()) return Bad(field, name, "must be an integer");
    const int64_t v = it->get<int64_t>();
    const int64_t hi = std::string_view(name) == "straggler_iterations" ? 1000 : 1000000;
    if (v < 1 || v > hi) return Bad(field, name, "must be between 1 and " + std::to_string(hi));
    *out = static_cast<int>(v);
  } else {
    if (!it->is_number()) return Bad(field, name, "must be a number");
    const double v = it->get<double>();
    if (!std::isfinite(v)) return Bad(field, name, "must be finite");
    *out = v;
  }
  return Status::Ok();
}

constexpr size_t kMaxScheduleCsvBytes = 4 * 1024 * 1024;

// schedule_csv given: checks it (a valid, deadlock-free schedule) and that
// the shape fields, if given, match it; then takes the shape from it.
Status ApplyScheduleCsv(const json& j, JobConfig* c, std::string* field) {
  if (c->schedule_csv.empty()) return Bad(field, "schedule_csv", "must not be empty");
  if (c->schedule_csv.size() > kMaxScheduleCsvBytes) {
    return Bad(field, "schedule_csv", "must be at most 4 MB");
  }
  if (j.contains("schedule") && !j["schedule"].is_null() && c->schedule != "csv") {
    return Bad(field, "schedule", "must be absent or \"csv\" when schedule_csv is given");
  }
  auto orders = schedules::ParseScheduleCsv(c->schedule_csv, "schedule_csv");
  if (!orders.ok()) {
    return Bad(field, "schedule_csv", "is not a valid schedule: " + orders.status().message());
  }
  auto dag = schedules::BuildScheduleDag(*orders);
  if (!dag.ok()) {
    return Bad(field, "schedule_csv", "is not a valid schedule: " + dag.status().message());
  }
  int model_stages = 0, microbatches = 0;
  for (const auto& n : dag->nodes()) {
    model_stages = std::max({model_stages, n.stage + 1, n.overlap.stage + 1});
    microbatches = std::max(microbatches, n.microbatch + 1);
    if (n.overlapped()) microbatches = std::max(microbatches, n.overlap.microbatch + 1);
  }
  const int ranks = dag->num_gpus();
  if (ranks > 4096 || microbatches > 65536) {
    return Bad(field, "schedule_csv",
               "has " + std::to_string(ranks) + " ranks and " + std::to_string(microbatches) +
                   " microbatches (at most 4096 and 65536)");
  }
  const int virtual_stages = model_stages % ranks == 0 ? model_stages / ranks : 1;
  const std::pair<const char*, std::pair<int*, int>> shape[] = {
      {"stages", {&c->stages, ranks}},
      {"microbatches", {&c->microbatches, microbatches}},
      {"virtual_stages", {&c->virtual_stages, virtual_stages}}};
  for (const auto& [name, given] : shape) {
    const bool present = j.contains(name) && !j[name].is_null();
    if (present && *given.first != given.second) {
      return Bad(field, name,
                 "is " + std::to_string(*given.first) + " but schedule_csv has " +
                     std::to_string(given.second) + " (it may be left out)");
    }
    *given.first = given.second;
  }
  c->schedule = "csv";
  return Status::Ok();
}

}  // namespace

std::optional<std::string> UnknownField(const json& j,
                                        std::initializer_list<std::string_view> names,
                                        std::string* known) {
  for (const auto& [key, value] : j.items()) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    known->clear();
    for (std::string_view n : names) *known += (known->empty() ? "" : ", ") + std::string(n);
    return key.size() > 64 ? key.substr(0, 64) + "..." : key;
  }
  return std::nullopt;
}

Result<JobConfig> ParseJobConfig(const json& j, std::string* field) {
  if (!j.is_object()) {
    *field = "";
    return Status::InvalidInput("the request body must be a JSON object");
  }
  JobConfig c;
  // Every member must be a field: a typo (stages_typo) is refused, naming it.
  std::string known;
  if (auto unknown = UnknownField(
          j,
          {"name", "schedule", "schedule_csv", "stages", "microbatches", "virtual_stages", "tp",
           "dp", "blocking_power_w", "unit_time", "cost_model", "time_scale", "energy_scale",
           "straggler_detection", "straggler_threshold", "straggler_iterations"},
          &known)) {
    return Bad(field, *unknown, "is not a job field (known: " + known + ")");
  }
  const bool csv = j.contains("schedule_csv") && !j["schedule_csv"].is_null();
  for (Status s :
       {Get(j, "name", true, &c.name, field), Get(j, "schedule", false, &c.schedule, field),
        Get(j, "schedule_csv", false, &c.schedule_csv, field),
        Get(j, "stages", !csv, &c.stages, field),
        Get(j, "microbatches", !csv, &c.microbatches, field),
        Get(j, "virtual_stages", false, &c.virtual_stages, field),
        Get(j, "tp", false, &c.tp, field), Get(j, "dp", false, &c.dp, field),
        Get(j, "blocking_power_w", false, &c.blocking_power_w, field),
        Get(j, "unit_time", false, &c.unit_time_s, field),
        Get(j, "cost_model", false, &c.cost_model, field),
        Get(j, "time_scale", false, &c.time_scale, field),
        Get(j, "energy_scale", false, &c.energy_scale, field),
        Get(j, "straggler_detection", false, &c.straggler_detection, field),
        Get(j, "straggler_threshold", false, &c.straggler_threshold, field),
        Get(j, "straggler_iterations", false, &c.straggler_iterations, field)}) {
    if (!s.ok()) return s;
  }
  if (c.name.empty() || c.name.size() > 200) return Bad(field, "name", "must be 1..200 characters");
  if (csv) {
    if (Status s = ApplyScheduleCsv(j, &c, field); !s.ok()) return s;
  } else if (c.schedule == "csv") {
    return Bad(field, "schedule", "is \"csv\" but there is no schedule_csv");
  } else if (c.schedule != "1f1b" && c.schedule != "gpipe" && c.schedule != "interleaved-1f1b" &&
             c.schedule != "zb-h1") {
    return Bad(field, "schedule",
               "must be one of 1f1b, gpipe, interleaved-1f1b, zb-h1 (or give schedule_csv)");
  }
  if (c.stages > 4096) return Bad(field, "stages", "must be at most 4096");
  if (c.microbatches > 65536) return Bad(field, "microbatches", "must be at most 65536");
  if (static_cast<int64_t>(c.stages) * c.tp * c.dp > 1000000) {
    return Bad(field, "dp", "makes more than 1,000,000 ranks");
  }
  if (c.blocking_power_w < 0) return Bad(field, "blocking_power_w", "must be >= 0");
  c.blocking_power_given = j.contains("blocking_power_w") && !j["blocking_power_w"].is_null();
  if (c.unit_time_s != 0 && !(c.unit_time_s >= 1e-5 && c.unit_time_s <= 10)) {
    return Bad(field, "unit_time", "must be between 1e-5 and 10 seconds (or 0: automatic)");
  }
  if (c.cost_model != "convex" && c.cost_model != "exponential") {
    return Bad(field, "cost_model", "must be convex or exponential");
  }
  if (!(c.time_scale > 0) || !(c.energy_scale > 0)) {
    return Bad(field, c.time_scale > 0 ? "energy_scale" : "time_scale", "must be > 0");
  }
  if (!(c.straggler_threshold > 0 && c.straggler_threshold <= 10)) {
    return Bad(field, "straggler_threshold", "must be in (0, 10]");
  }
  return c;
}

json JobConfig::ToJson() const {
  json j = {{"name", name},
            {"schedule", schedule},
            {"stages", stages},
            {"microbatches", microbatches},
            {"virtual_stages", virtual_stages},
            {"tp", tp},
            {"dp", dp},
            {"blocking_power_w", blocking_power_given ? json(blocking_power_w) : json(nullptr)},
            {"unit_time", unit_time_s},
            {"cost_model", cost_model},
            {"time_scale", time_scale},
            {"energy_scale", energy_scale},
            {"straggler_detection", straggler_detection},
            {"straggler_threshold", straggler_threshold},
            {"straggler_iterations", straggler_iterations}};
  if (!schedule_csv.empty()) j["schedule_csv"] = schedule_csv;
  return j;
}

job::JobSpec JobConfig::ToSpec() const {
  job::JobSpec spec;
  spec.schedule = schedule;
  spec.schedule_csv = schedule_csv;
  spec.stages = stages;
  spec.microbatches = microbatches;
  spec.virtual_stages = virtual_stages;
  spec.tp = tp;
  spec.dp = dp;
  spec.blocking_power_w = blocking_power_w;
  spec.unit_time_s = unit_time_s;
  spec.cost_model = cost_model;
  spec.time_scale = time_scale;
  spec.energy_scale = energy_scale;
  return spec;
}

}  // namespace perseus::server
