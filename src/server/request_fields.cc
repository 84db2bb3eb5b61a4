#include "src/server/request_fields.h"

#include <algorithm>

#include "src/server/job_config.h"
#include "src/server/json_body.h"

namespace perseus::server {

using nlohmann::json;

Reply Ok(Outcome outcome, json body) { return Reply{outcome, std::move(body)}; }

Reply FromStatus(const Status& s) { return Error(Outcome::kFailed, s.message()); }

// Parses a JSON body: an object, or an error reply.
std::optional<Reply> ParseObject(const std::string& body, json* out) {
  // Bounded before any DOM is built (the HTTP layer bounds the bytes per
  // route): nesting depth and values.
  JsonLimits limits;
  limits.max_bytes = std::max<size_t>(body.size(), 1);
  auto parsed = ParseJsonBody(body, limits);
  if (!parsed.ok()) {
    return Error(Outcome::kInvalid,
                 "the request body is not valid JSON: " + parsed.status().message());
  }
  *out = std::move(parsed).value();
  if (!out->is_object()) return Error(Outcome::kInvalid, "the request body must be a JSON object");
  return std::nullopt;
}

// An integer field in [lo, hi]; an error reply otherwise.
std::optional<Reply> IntField(const json& j, const char* name, int64_t lo, int64_t hi, int64_t* out,
                              bool required) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (!required) return std::nullopt;
    return Error(Outcome::kInvalid, std::string("field '") + name + "' is required", name);
  }
  if (!it->is_number_integer()) {
    return Error(Outcome::kInvalid, std::string("field '") + name + "' must be an integer", name);
  }
  const int64_t v =
      it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX ? INT64_MAX : it->get<int64_t>();
  if (v < lo || v > hi) {
    return Error(Outcome::kInvalid,
                 std::string("field '") + name + "' must be between " + std::to_string(lo) +
                     " and " + std::to_string(hi) + ", got " + std::to_string(v),
                 name);
  }
  *out = v;
  return std::nullopt;
}

std::optional<Reply> NumberField(const json& j, const char* name, double lo, double hi, double* out,
                                 bool required) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (!required) return std::nullopt;
    return Error(Outcome::kInvalid, std::string("field '") + name + "' is required", name);
  }
  if (!it->is_number())
    return Error(Outcome::kInvalid, std::string("field '") + name + "' must be a number", name);
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    return Error(Outcome::kInvalid,
                 std::string("field '") + name + "' must be between " + std::to_string(lo) +
                     " and " + std::to_string(hi),
                 name);
  }
  *out = v;
  return std::nullopt;
}

// Every member of a request object must be one of `names`: a typo
// (stages_typo) is a 400 naming it, never silently ignored.
std::optional<Reply> OnlyFields(const json& j, std::initializer_list<std::string_view> names,
                                const std::string& where) {
  std::string known;
  auto unknown = UnknownField(j, names, &known);
  if (!unknown) return std::nullopt;
  return Error(Outcome::kInvalid,
               "unknown field '" + *unknown + "'" + where + " (known: " + known + ")", *unknown);
}

std::string StateName(JobState s) { return std::string(JobStateName(s)); }

bool IsPhase(const std::string& phase) {
  return phase == "warmup" || phase == "baseline" || phase == "profiling" || phase == "planned";
}

// Seconds as people read them: 4 significant digits (3.27, 0.0501).
double TMin(const planner::StoredFrontier& f) { return f.points()[f.TMinIndex()].time_s; }

// The iteration time a straggler imposes: given, or its slowdown times T_min.
double TPrime(const Straggler& s, double t_min_s) {
  return s.iteration_time_s > 0 ? s.iteration_time_s : s.slowdown * t_min_s;
}

double TargetAfter(const std::map<int, Straggler>& stragglers, double t_min_s, int pipeline,
                   const std::optional<Straggler>& change) {
  double t_prime = change ? TPrime(*change, t_min_s) : 0;
  for (const auto& [p, other] : stragglers) {
    if (p != pipeline) t_prime = std::max(t_prime, TPrime(other, t_min_s));
  }
  return t_prime;
}

bool ParseCount(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

Reply Error(Outcome outcome, const std::string& message, const std::string& field) {
  json body = {{"error", message}};
  if (!field.empty()) body["field"] = field;
  return Reply{outcome, std::move(body)};
}

json RankInfo::ToJson() const {
  return {{"rank", rank},       {"pp_rank", pp_rank},   {"dp_rank", dp_rank},
          {"tp_rank", tp_rank}, {"gpu_name", gpu_name}, {"frequencies_mhz", frequencies_mhz}};
}

}  // namespace perseus::server
