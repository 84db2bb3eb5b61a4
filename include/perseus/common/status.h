// Errors as values (the leveldb habit): library calls that can fail return a
// Status or a Result<T>; exceptions are used only at the edges (CLI, bindings).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace perseus {

// What kind of failure a Status carries. The CLI maps kInvalidInput to exit
// code 2 (bad user input) and everything else to 1.
enum class StatusCode {
  kOk = 0,
  kInvalidInput,      // the user's file, flag or request is wrong
  kNotFound,          // a file or object does not exist
  kInfeasible,        // a solver invariant failed (a bug, reported, not hidden)
  kPermissionDenied,  // the operation needs a privilege this process lacks
  kUnavailable,       // a library, device or service is not there (right now)
  kCancelled,         // the caller stopped the work (a cancel, or its time budget)
  kInternal,          // anything else
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status InvalidInput(std::string msg) {
    return Status(StatusCode::kInvalidInput, std::move(msg));
  }
  static Status NotFound(std::string msg) { return Status(StatusCode::kNotFound, std::move(msg)); }
  static Status Infeasible(std::string msg) {
    return Status(StatusCode::kInfeasible, std::move(msg));
  }
  static Status PermissionDenied(std::string msg) {
    return Status(StatusCode::kPermissionDenied, std::move(msg));
  }
  static Status Unavailable(std::string msg) {
    return Status(StatusCode::kUnavailable, std::move(msg));
  }
  static Status Cancelled(std::string msg) {
    return Status(StatusCode::kCancelled, std::move(msg));
  }
  static Status Internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The input field at fault, when the error is about one ("unit_time",
  // "virtual_stages": a job specification's names); "" otherwise. Interfaces
  // map it to what they call the field (an HTTP reply's "field").
  const std::string& field() const { return field_; }
  Status WithField(std::string field) && {
    field_ = std::move(field);
    return std::move(*this);
  }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

// Either a value or a non-OK Status. Made from an OK Status (a bug: there is
// no value), it holds an kInternal error saying so, as abseil's StatusOr does.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status)                      // NOLINT(google-explicit-constructor)
      : v_(status.ok() ? Status::Internal("a Result was made from an OK status (a bug)")
                       : std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: !ok()
  const Status& status() const { return std::get<Status>(v_); }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace perseus

// Propagation (abseil's RETURN_IF_ERROR / ASSIGN_OR_RETURN): in a function
// returning Status or Result<U>,
//   PERSEUS_RETURN_IF_ERROR(DoThing());
//   PERSEUS_ASSIGN_OR_RETURN(Profile profile, ReadProfileCsv(path));
#define PERSEUS_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::perseus::Status perseus_status_ = (expr);        \
    if (!perseus_status_.ok()) return perseus_status_; \
  } while (false)

#define PERSEUS_STATUS_CONCAT_INNER_(a, b) a##b
#define PERSEUS_STATUS_CONCAT_(a, b) PERSEUS_STATUS_CONCAT_INNER_(a, b)
#define PERSEUS_ASSIGN_OR_RETURN(lhs, expr) \
  PERSEUS_ASSIGN_OR_RETURN_IMPL_(PERSEUS_STATUS_CONCAT_(perseus_result_, __LINE__), lhs, expr)
#define PERSEUS_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                                   \
  if (!result.ok()) return result.status();               \
  lhs = std::move(result).value()
