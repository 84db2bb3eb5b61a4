#include "src/server/json_body.h"

#include <string>

namespace perseus::server {
namespace {

using nlohmann::json;

// Counts depth and values; stops the parse at the first limit exceeded.
class LimitCounter : public nlohmann::json_sax<json> {
 public:
  explicit LimitCounter(const JsonLimits& limits) : limits_(limits) {}

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    syntax_error_ = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, ...": drop the tag.
    const size_t tag = syntax_error_.find("] ");
    if (syntax_error_.rfind("[json.exception.", 0) == 0 && tag != std::string::npos) {
      syntax_error_.erase(0, tag + 2);
    }
    return false;
  }

  const std::string& limit_error() const { return limit_error_; }
  const std::string& syntax_error() const { return syntax_error_; }

 private:
  bool Value() {
    if (++values_ > limits_.max_values) {
      limit_error_ = "the JSON body has more than " + std::to_string(limits_.max_values) +
                     " values (the limit)";
      return false;
    }
    return true;
  }
  bool Open() {
    if (!Value()) return false;
    if (++depth_ > limits_.max_depth) {
      limit_error_ = "the JSON body nests arrays and objects deeper than " +
                     std::to_string(limits_.max_depth) + " levels (the limit)";
      return false;
    }
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }

  const JsonLimits& limits_;
  size_t values_ = 0;
  int depth_ = 0;
  std::string limit_error_;
  std::string syntax_error_;
};

}  // namespace

Result<json> ParseJsonBody(std::string_view body, const JsonLimits& limits) {
  if (body.size() > limits.max_bytes) {
    return Status::InvalidInput("the JSON body is " + std::to_string(body.size()) +
                                " bytes, more than the limit of " +
                                std::to_string(limits.max_bytes));
  }
  LimitCounter counter(limits);
  const bool ok = json::sax_parse(body.begin(), body.end(), &counter, json::input_format_t::json,
                                  /*strict=*/true);
  if (!counter.limit_error().empty()) return Status::InvalidInput(counter.limit_error());
  if (!ok) {
    return Status::InvalidInput(
        "the request body is not valid JSON: " +
        (counter.syntax_error().empty() ? std::string("parse error") : counter.syntax_error()));
  }
  // Within every limit: the DOM's size is bounded by the body's.
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Status::InvalidInput("the request body is not valid JSON");
  return parsed;
}

}  // namespace perseus::server
