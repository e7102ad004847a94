#include "network/ethernet.h"

#include <fmt/core.h>

namespace strata::network {

Result<MacAddress> parseMac(std::string_view text) {
  auto hexValue = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  MacAddress mac{};
  bool wellFormed = text.size() == 17;
  for (size_t i = 0; wellFormed && i < 6; ++i) {
    int high = hexValue(text[3 * i]);
    int low = hexValue(text[3 * i + 1]);
    if (high < 0 || low < 0 || (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-')) wellFormed = false;
    else mac[i] = static_cast<uint8_t>(high << 4 | low);
  }
  if (!wellFormed) return Error{fmt::format("'{}' is not a MAC address like 52:54:00:12:34:56", text)};
  return mac;
}

std::string formatMac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

}  // namespace strata::network
