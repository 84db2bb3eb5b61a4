// What the HTML pages of perseus_report share.
#pragma once

#include <string>

namespace perseus::report {

// Text made safe inside HTML elements and attribute values.
inline std::string Escape(const std::string& text) {
  std::string out;
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
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace perseus::report
