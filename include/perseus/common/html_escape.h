// The one escaper of the HTML pages and SVG files Perseus writes: text made
// safe inside elements and (double- or single-quoted) attribute values.
#pragma once

#include <string>
#include <string_view>

namespace perseus {

inline std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace perseus
