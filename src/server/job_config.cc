#include "src/server/job_config.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "perseus/planner/cost_model.h"
#include "perseus/schedules/schedule.h"
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
  if (c->spec.schedule_csv.empty()) return Bad(field, "schedule_csv", "must not be empty");
  if (c->spec.schedule_csv.size() > kMaxScheduleCsvBytes) {
    return Bad(field, "schedule_csv", "must be at most 4 MB");
  }
  if (j.contains("schedule") && !j["schedule"].is_null() && c->spec.schedule != "csv") {
    return Bad(field, "schedule", "must be absent or \"csv\" when schedule_csv is given");
  }
  auto orders = schedules::ParseScheduleCsv(c->spec.schedule_csv, "schedule_csv");
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
      {"stages", {&c->spec.stages, ranks}},
      {"microbatches", {&c->spec.microbatches, microbatches}},
      {"virtual_stages", {&c->spec.virtual_stages, virtual_stages}}};
  for (const auto& [name, given] : shape) {
    const bool present = j.contains(name) && !j[name].is_null();
    if (present && *given.first != given.second) {
      return Bad(field, name,
                 "is " + std::to_string(*given.first) + " but schedule_csv has " +
                     std::to_string(given.second) + " (it may be left out)");
    }
    *given.first = given.second;
  }
  c->spec.schedule = "csv";
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
       {Get(j, "name", true, &c.name, field), Get(j, "schedule", false, &c.spec.schedule, field),
        Get(j, "schedule_csv", false, &c.spec.schedule_csv, field),
        Get(j, "stages", !csv, &c.spec.stages, field),
        Get(j, "microbatches", !csv, &c.spec.microbatches, field),
        Get(j, "virtual_stages", false, &c.spec.virtual_stages, field),
        Get(j, "tp", false, &c.spec.tp, field), Get(j, "dp", false, &c.spec.dp, field),
        Get(j, "blocking_power_w", false, &c.spec.blocking_power_w, field),
        Get(j, "unit_time", false, &c.spec.unit_time_s, field),
        Get(j, "cost_model", false, &c.spec.cost_model, field),
        Get(j, "time_scale", false, &c.spec.time_scale, field),
        Get(j, "energy_scale", false, &c.spec.energy_scale, field),
        Get(j, "straggler_detection", false, &c.straggler_detection, field),
        Get(j, "straggler_threshold", false, &c.straggler_threshold, field),
        Get(j, "straggler_iterations", false, &c.straggler_iterations, field)}) {
    if (!s.ok()) return s;
  }
  // Characters as JSON Schema's maxLength counts them: code points (the JSON
  // parser has checked the UTF-8; continuation bytes are 10xxxxxx).
  const auto characters =
      std::count_if(c.name.begin(), c.name.end(), [](char b) { return (b & 0xC0) != 0x80; });
  if (characters < 1 || characters > 200) return Bad(field, "name", "must be 1..200 characters");
  if (csv) {
    if (Status s = ApplyScheduleCsv(j, &c, field); !s.ok()) return s;
  } else if (c.spec.schedule == "csv") {
    return Bad(field, "schedule", "is \"csv\" but there is no schedule_csv");
  } else if (schedules::ScheduleKind kind; !schedules::ParseScheduleName(c.spec.schedule, &kind)) {
    return Bad(field, "schedule",
               "must be one of " + schedules::ScheduleNames() + " (or give schedule_csv)");
  }
  if (c.spec.stages > 4096) return Bad(field, "stages", "must be at most 4096");
  if (c.spec.microbatches > 65536) return Bad(field, "microbatches", "must be at most 65536");
  if (static_cast<int64_t>(c.spec.stages) * c.spec.tp * c.spec.dp > 1000000) {
    return Bad(field, "dp", "makes more than 1,000,000 ranks");
  }
  if (c.spec.blocking_power_w < 0) return Bad(field, "blocking_power_w", "must be >= 0");
  c.blocking_power_given = j.contains("blocking_power_w") && !j["blocking_power_w"].is_null();
  if (c.spec.unit_time_s != 0 && !(c.spec.unit_time_s >= 1e-5 && c.spec.unit_time_s <= 10)) {
    return Bad(field, "unit_time", "must be between 1e-5 and 10 seconds (or 0: automatic)");
  }
  if (planner::CostModel model; !planner::ParseCostModel(c.spec.cost_model, &model)) {
    return Bad(field, "cost_model", "must be " + planner::CostModelNames());
  }
  if (!(c.spec.time_scale > 0) || !(c.spec.energy_scale > 0)) {
    return Bad(field, c.spec.time_scale > 0 ? "energy_scale" : "time_scale", "must be > 0");
  }
  if (!(c.straggler_threshold > 0 && c.straggler_threshold <= 10)) {
    return Bad(field, "straggler_threshold", "must be in (0, 10]");
  }
  return c;
}

json JobConfig::ToJson() const {
  json j = {
      {"name", name},
      {"schedule", spec.schedule},
      {"stages", spec.stages},
      {"microbatches", spec.microbatches},
      {"virtual_stages", spec.virtual_stages},
      {"tp", spec.tp},
      {"dp", spec.dp},
      {"blocking_power_w", blocking_power_given ? json(spec.blocking_power_w) : json(nullptr)},
      {"unit_time", spec.unit_time_s},
      {"cost_model", spec.cost_model},
      {"time_scale", spec.time_scale},
      {"energy_scale", spec.energy_scale},
      {"straggler_detection", straggler_detection},
      {"straggler_threshold", straggler_threshold},
      {"straggler_iterations", straggler_iterations}};
  if (!spec.schedule_csv.empty()) j["schedule_csv"] = spec.schedule_csv;
  return j;
}

}  // namespace perseus::server
