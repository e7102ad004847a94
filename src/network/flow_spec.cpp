#include "network/flow_spec.h"

#include <arpa/inet.h>

#include <charconv>

#include <fmt/core.h>

namespace strata::network {
namespace {

template <typename T>
Result<T> parseNumber(std::string_view field, std::string_view text, unsigned long long max) {
  unsigned long long value = 0;
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value > max)
    return Error{fmt::format("{}: '{}' is not a number from 0 to {}", field, text, max)};
  return static_cast<T>(value);
}

Result<FlowMatch::Prefix> parsePrefix(std::string_view field, std::string_view text, int family) {
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  unsigned maxBits = family == AF_INET ? 32 : 128;
  FlowMatch::Prefix prefix;
  prefix.length = maxBits;
  if (slash != std::string_view::npos) {
    auto length = parseNumber<unsigned>(field, text.substr(slash + 1), maxBits);
    if (!length) return length.error();
    prefix.length = *length;
  }
  if (::inet_pton(family, address.c_str(), prefix.address.data()) != 1)
    return Error{fmt::format("{}: '{}' is not an IPv{} address", field, address, family == AF_INET ? 4 : 6)};
  return prefix;
}

std::string formatPrefix(const FlowMatch::Prefix& prefix, int family) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, prefix.address.data(), text, sizeof text);
  unsigned maxBits = family == AF_INET ? 32 : 128;
  return prefix.length == maxBits ? std::string(text) : fmt::format("{}/{}", text, prefix.length);
}

Result<PortId> resolve(std::string_view field, std::string_view name, const PortResolver& resolvePort) {
  if (auto id = resolvePort(name)) return *id;
  return Error{fmt::format("{}: no port '{}' on this switch", field, name)};
}

Result<void> parseAction(std::string_view text, const PortResolver& resolvePort, std::vector<FlowAction>& actions) {
  using Kind = FlowAction::Kind;
  size_t colon = text.find(':');
  std::string_view name = text.substr(0, colon);
  std::string_view argument = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  bool wantsArgument = name == "output" || name == "mirror" || name == "set_vlan" || name == "mod_vlan_vid";
  if (wantsArgument == argument.empty())
    return Error{fmt::format("action '{}': {}", text, wantsArgument ? "needs :ARGUMENT" : "takes no argument")};
  FlowAction action;
  if (name == "output" || name == "mirror") {
    auto port = resolve(name, argument, resolvePort);
    if (!port) return port.error();
    action.kind = name == "output" ? Kind::Output : Kind::Mirror;
    action.port = *port;
  } else if (name == "set_vlan" || name == "mod_vlan_vid") {
    auto vlan = parseNumber<uint16_t>(name, argument, kMaxVlan);
    if (!vlan) return vlan.error();
    action.kind = Kind::SetVlan;
    action.vlan = *vlan;
  } else if (name == "flood") action.kind = Kind::Flood;
  else if (name == "normal") action.kind = Kind::Normal;
  else if (name == "drop") action.kind = Kind::Drop;
  else if (name == "strip_vlan") action.kind = Kind::StripVlan;
  else if (name == "all") action.kind = Kind::AllPorts;
  else if (name == "controller") action.kind = Kind::Controller;
  else return Error{fmt::format("unknown action '{}'", text)};
  actions.push_back(action);
  return {};
}

// The shorthands: ethertype plus, for some, the IP protocol.
bool applyShorthand(std::string_view word, FlowMatch& match) {
  struct Shorthand {
    std::string_view word;
    uint16_t etherType;
    uint8_t proto;
  };
  static constexpr Shorthand kShorthands[] = {
      {"ip", kEtherTypeIpv4, 0},   {"ipv6", kEtherTypeIpv6, 0}, {"arp", kEtherTypeArp, 0},
      {"icmp", kEtherTypeIpv4, 1}, {"tcp", kEtherTypeIpv4, 6},  {"udp", kEtherTypeIpv4, 17},
      {"icmp6", kEtherTypeIpv6, 58}, {"tcp6", kEtherTypeIpv6, 6}, {"udp6", kEtherTypeIpv6, 17},
  };
  for (const auto& shorthand : kShorthands) {
    if (shorthand.word != word) continue;
    match.etherType = shorthand.etherType;
    if (shorthand.proto != 0) match.ipProto = shorthand.proto;
    return true;
  }
  return false;
}

// "52:54:00:00:00:01" or "01:00:00:00:00:00/01:00:00:00:00:00" (address/mask).
Result<void> parseMaskedMac(std::string_view text, std::optional<MacAddress>& mac, std::optional<MacAddress>& mask) {
  size_t slash = text.find('/');
  auto address = parseMac(text.substr(0, slash));
  if (!address) return address.error();
  mac = *address;
  if (slash == std::string_view::npos) return {};
  auto bits = parseMac(text.substr(slash + 1));
  if (!bits) return bits.error();
  mask = *bits;
  return {};
}

std::string formatMaskedMac(const MacAddress& mac, const std::optional<MacAddress>& mask) {
  return mask ? formatMac(mac) + "/" + formatMac(*mask) : formatMac(mac);
}

Result<void> parseField(std::string_view key, std::string_view value, const PortResolver& resolvePort,
                        FlowRule& rule) {
  FlowMatch& match = rule.match;
  auto set = [](auto& slot, auto parsed) -> Result<void> {
    if (!parsed) return parsed.error();
    slot = *parsed;
    return {};
  };
  if (key == "priority") return set(rule.priority, parseNumber<uint16_t>(key, value, 65535));
  if (key == "in_port") return set(match.inPort, resolve(key, value, resolvePort));
  if (key == "dl_src") return parseMaskedMac(value, match.srcMac, match.srcMacMask);
  if (key == "dl_dst") return parseMaskedMac(value, match.dstMac, match.dstMacMask);
  if (key == "dl_vlan") return set(match.vlan, parseNumber<uint16_t>(key, value, kMaxVlan));
  if (key == "dl_type") return set(match.etherType, parseNumber<uint16_t>(key, value, 0xffff));
  if (key == "nw_src") return set(match.ipv4Src, parsePrefix(key, value, AF_INET));
  if (key == "nw_dst") return set(match.ipv4Dst, parsePrefix(key, value, AF_INET));
  if (key == "ipv6_src") return set(match.ipv6Src, parsePrefix(key, value, AF_INET6));
  if (key == "ipv6_dst") return set(match.ipv6Dst, parsePrefix(key, value, AF_INET6));
  if (key == "nw_proto") return set(match.ipProto, parseNumber<uint8_t>(key, value, 255));
  if (key == "tp_src") return set(match.l4Src, parseNumber<uint16_t>(key, value, 65535));
  if (key == "tp_dst") return set(match.l4Dst, parseNumber<uint16_t>(key, value, 65535));
  return Error{fmt::format("unknown match field '{}'", key)};
}

}  // namespace

Result<FlowRule> parseFlowRule(std::string_view text, const PortResolver& resolvePort) {
  FlowRule rule;
  rule.priority = kDefaultFlowPriority;
  size_t actionsAt = text.find("actions=");
  if (actionsAt == std::string_view::npos) return Error{"a flow needs actions=... (e.g. actions=drop)"};
  std::string_view matchText = text.substr(0, actionsAt);
  std::string_view actionText = text.substr(actionsAt + 8);
  while (!matchText.empty()) {
    size_t comma = matchText.find(',');
    std::string_view token = matchText.substr(0, comma);
    matchText = comma == std::string_view::npos ? std::string_view{} : matchText.substr(comma + 1);
    if (token.empty()) continue;
    size_t equals = token.find('=');
    if (equals == std::string_view::npos) {
      if (!applyShorthand(token, rule.match)) return Error{fmt::format("unknown match '{}'", token)};
      continue;
    }
    if (auto parsed = parseField(token.substr(0, equals), token.substr(equals + 1), resolvePort, rule); !parsed)
      return parsed.error();
  }
  if (actionText.empty()) return Error{"actions= is empty (say actions=drop to drop)"};
  while (!actionText.empty()) {
    size_t comma = actionText.find(',');
    std::string_view token = actionText.substr(0, comma);
    actionText = comma == std::string_view::npos ? std::string_view{} : actionText.substr(comma + 1);
    if (auto parsed = parseAction(token, resolvePort, rule.actions); !parsed) return parsed.error();
  }
  return rule;
}

std::string formatFlowMatch(const FlowMatch& match) {
  std::vector<std::string> parts;
  if (match.inPort) parts.push_back(fmt::format("in_port={}", *match.inPort));
  if (match.srcMac) parts.push_back("dl_src=" + formatMaskedMac(*match.srcMac, match.srcMacMask));
  if (match.dstMac) parts.push_back("dl_dst=" + formatMaskedMac(*match.dstMac, match.dstMacMask));
  if (match.vlan) parts.push_back(fmt::format("dl_vlan={}", *match.vlan));
  if (match.etherType) parts.push_back(fmt::format("dl_type={:#06x}", *match.etherType));
  if (match.ipv4Src) parts.push_back("nw_src=" + formatPrefix(*match.ipv4Src, AF_INET));
  if (match.ipv4Dst) parts.push_back("nw_dst=" + formatPrefix(*match.ipv4Dst, AF_INET));
  if (match.ipv6Src) parts.push_back("ipv6_src=" + formatPrefix(*match.ipv6Src, AF_INET6));
  if (match.ipv6Dst) parts.push_back("ipv6_dst=" + formatPrefix(*match.ipv6Dst, AF_INET6));
  if (match.ipProto) parts.push_back(fmt::format("nw_proto={}", *match.ipProto));
  if (match.l4Src) parts.push_back(fmt::format("tp_src={}", *match.l4Src));
  if (match.l4Dst) parts.push_back(fmt::format("tp_dst={}", *match.l4Dst));
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

std::string formatFlowActions(const std::vector<FlowAction>& actions) {
  if (actions.empty()) return "drop";
  std::string out;
  for (const auto& action : actions) {
    if (!out.empty()) out += ',';
    switch (action.kind) {
      case FlowAction::Kind::Output: out += fmt::format("output:{}", action.port); break;
      case FlowAction::Kind::Flood: out += "flood"; break;
      case FlowAction::Kind::Normal: out += "normal"; break;
      case FlowAction::Kind::Drop: out += "drop"; break;
      case FlowAction::Kind::SetVlan: out += fmt::format("set_vlan:{}", action.vlan); break;
      case FlowAction::Kind::StripVlan: out += "strip_vlan"; break;
      case FlowAction::Kind::Mirror: out += fmt::format("mirror:{}", action.port); break;
      case FlowAction::Kind::AllPorts: out += "all"; break;
      case FlowAction::Kind::Controller: out += "controller"; break;
    }
  }
  return out;
}

}  // namespace strata::network
