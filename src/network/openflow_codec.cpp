#include "network/openflow_codec.h"

#include <bit>

namespace strata::network::openflow {
namespace {

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;

// Payload bytes of each supported OXM field (without its mask).
size_t oxmBytes(uint8_t field) {
  switch (field) {
    case kOxmInPort: return 4;
    case kOxmEthDst: case kOxmEthSrc: return 6;
    case kOxmEthType: case kOxmVlanVid: return 2;
    case kOxmIpProto: return 1;
    case kOxmIpv4Src: case kOxmIpv4Dst: return 4;
    case kOxmTcpSrc: case kOxmTcpDst: case kOxmUdpSrc: case kOxmUdpDst: return 2;
    case kOxmIpv6Src: case kOxmIpv6Dst: return 16;
    default: return 0;
  }
}

bool maskable(uint8_t field) {
  return field == kOxmEthDst || field == kOxmEthSrc || field == kOxmIpv4Src || field == kOxmIpv4Dst ||
         field == kOxmIpv6Src || field == kOxmIpv6Dst;
}

// A contiguous mask's prefix length; nullopt for a mask with holes.
std::optional<unsigned> prefixLength(std::span<const uint8_t> mask) {
  unsigned length = 0;
  bool ended = false;
  for (uint8_t byte : mask) {
    auto ones = static_cast<unsigned>(std::countl_one(byte));
    if (ended && byte != 0) return std::nullopt;
    if (ones < 8 && static_cast<uint8_t>(byte << ones) != 0) return std::nullopt;
    length += ones;
    if (ones < 8) ended = true;
  }
  return length;
}

std::optional<Failure> setPrefix(std::optional<FlowMatch::Prefix>& slot, std::span<const uint8_t> value,
                                 std::span<const uint8_t> mask) {
  FlowMatch::Prefix prefix;
  std::memcpy(prefix.address.data(), value.data(), value.size());
  prefix.length = static_cast<unsigned>(value.size() * 8);
  if (!mask.empty()) {
    auto length = prefixLength(mask);
    if (!length) return Failure{kBadMatch, kMatchBadMask};  // only prefixes: the flow table matches those
    prefix.length = *length;
    for (size_t i = 0; i < value.size(); ++i)
      if (value[i] & ~mask[i]) return Failure{kBadMatch, kMatchBadValue};  // 1.3: value bits outside the mask
  }
  slot = prefix;
  return std::nullopt;
}

std::optional<Failure> decodeField(uint8_t field, std::span<const uint8_t> value, std::span<const uint8_t> mask,
                                   FlowMatch& match, std::optional<uint8_t>& l4Proto) {
  auto be16 = [&] { return static_cast<uint16_t>(value[0] << 8 | value[1]); };
  switch (field) {
    case kOxmInPort: {
      uint32_t port = static_cast<uint32_t>(value[0]) << 24 | value[1] << 16 | value[2] << 8 | value[3];
      if (port == 0 || port > kPortMax) return Failure{kBadMatch, kMatchBadValue};
      match.inPort = port;
      return std::nullopt;
    }
    case kOxmEthDst:
    case kOxmEthSrc: {
      auto& mac = field == kOxmEthDst ? match.dstMac : match.srcMac;
      auto& macMask = field == kOxmEthDst ? match.dstMacMask : match.srcMacMask;
      mac = macAt(value.data());
      if (!mask.empty()) {
        macMask = macAt(mask.data());
        for (size_t i = 0; i < 6; ++i) (*mac)[i] &= mask[i];
      }
      return std::nullopt;
    }
    case kOxmEthType: match.etherType = be16(); return std::nullopt;
    case kOxmVlanVid: {
      uint16_t vid = be16();
      if (!(vid & kVidPresent) || (vid & 0x0fff) < kMinVlan || (vid & 0x0fff) > kMaxVlan || (vid & 0xe000))
        return Failure{kBadMatch, kMatchBadValue};  // every frame has a VLAN here: OFPVID_NONE cannot match
      match.vlan = vid & 0x0fff;
      return std::nullopt;
    }
    case kOxmIpProto: match.ipProto = value[0]; return std::nullopt;
    case kOxmIpv4Src: return setPrefix(match.ipv4Src, value, mask);
    case kOxmIpv4Dst: return setPrefix(match.ipv4Dst, value, mask);
    case kOxmIpv6Src: return setPrefix(match.ipv6Src, value, mask);
    case kOxmIpv6Dst: return setPrefix(match.ipv6Dst, value, mask);
    case kOxmTcpSrc: case kOxmTcpDst: case kOxmUdpSrc: case kOxmUdpDst: {
      uint8_t proto = field <= kOxmTcpDst ? kProtoTcp : kProtoUdp;
      if (l4Proto && *l4Proto != proto) return Failure{kBadMatch, kMatchBadPrereq};
      l4Proto = proto;
      (field == kOxmTcpSrc || field == kOxmUdpSrc ? match.l4Src : match.l4Dst) = be16();
      return std::nullopt;
    }
    default: return Failure{kBadMatch, kMatchBadField};
  }
}

// OpenFlow wants prerequisites spelled out (an IPv4 address needs eth_type=0x0800, ...).
std::optional<Failure> checkPrerequisites(const FlowMatch& match, std::optional<uint8_t> l4Proto) {
  auto etherTypeIs = [&](uint16_t type) { return match.etherType && *match.etherType == type; };
  if ((match.ipv4Src || match.ipv4Dst) && !etherTypeIs(kEtherTypeIpv4)) return Failure{kBadMatch, kMatchBadPrereq};
  if ((match.ipv6Src || match.ipv6Dst) && !etherTypeIs(kEtherTypeIpv6)) return Failure{kBadMatch, kMatchBadPrereq};
  if (match.ipProto && !etherTypeIs(kEtherTypeIpv4) && !etherTypeIs(kEtherTypeIpv6))
    return Failure{kBadMatch, kMatchBadPrereq};
  if (l4Proto && (!match.ipProto || *match.ipProto != *l4Proto)) return Failure{kBadMatch, kMatchBadPrereq};
  return std::nullopt;
}

void putOxm(Writer& out, uint8_t field, const uint8_t* value, size_t bytes, const uint8_t* mask = nullptr) {
  out.u16(kOxmClassBasic);
  out.u8(static_cast<uint8_t>(field << 1 | (mask ? 1 : 0)));
  out.u8(static_cast<uint8_t>(mask ? bytes * 2 : bytes));
  out.bytes(value, bytes);
  if (mask) out.bytes(mask, bytes);
}

void putOxm16(Writer& out, uint8_t field, uint16_t value) {
  uint8_t bytes[2] = {static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value)};
  putOxm(out, field, bytes, 2);
}

void putPrefix(Writer& out, uint8_t field, const FlowMatch::Prefix& prefix, size_t bytes) {
  uint8_t mask[16] = {};
  for (size_t i = 0; i < bytes; ++i) {
    unsigned bits = prefix.length > i * 8 ? std::min(8u, prefix.length - static_cast<unsigned>(i * 8)) : 0u;
    mask[i] = static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
  }
  uint8_t value[16];
  for (size_t i = 0; i < bytes; ++i) value[i] = prefix.address[i] & mask[i];
  putOxm(out, field, value, bytes, prefix.length == bytes * 8 ? nullptr : mask);
}

void putOutput(Writer& out, uint32_t port, uint16_t maxLen = 0) {
  out.u16(kActOutput);
  out.u16(16);
  out.u32(port);
  out.u16(maxLen);
  out.zeros(6);
}

}  // namespace

std::optional<Failure> decodeMatch(Reader& reader, FlowMatch& match) {
  uint16_t type = reader.u16();
  uint16_t length = reader.u16();
  if (!reader.ok() || length < 4) return Failure{kBadMatch, kMatchBadLen};
  if (type != 1) return Failure{kBadMatch, kMatchBadType};  // only OFPMT_OXM
  size_t padded = (length + 7u) / 8 * 8 - 4;
  if (padded > reader.remaining()) return Failure{kBadMatch, kMatchBadLen};
  Reader fields(reader.bytes(length - 4u));
  reader.skip(padded - (length - 4u));
  uint64_t seen = 0;
  std::optional<uint8_t> l4Proto;
  while (fields.remaining() > 0) {
    uint16_t oxmClass = fields.u16();
    uint8_t fieldAndMask = fields.u8();
    uint8_t payload = fields.u8();
    if (!fields.ok()) return Failure{kBadMatch, kMatchBadLen};
    if (oxmClass != kOxmClassBasic) return Failure{kBadMatch, kMatchBadField};
    uint8_t field = fieldAndMask >> 1;
    bool hasMask = fieldAndMask & 1;
    size_t bytes = oxmBytes(field);
    if (bytes == 0) return Failure{kBadMatch, kMatchBadField};
    if (payload != (hasMask ? 2 * bytes : bytes) || payload > fields.remaining())
      return Failure{kBadMatch, kMatchBadLen};
    if (hasMask && !maskable(field)) return Failure{kBadMatch, kMatchBadMask};
    if (seen & (uint64_t{1} << field)) return Failure{kBadMatch, kMatchDupField};
    seen |= uint64_t{1} << field;
    auto value = fields.bytes(bytes);
    auto mask = hasMask ? fields.bytes(bytes) : std::span<const uint8_t>{};
    if (auto failure = decodeField(field, value, mask, match, l4Proto)) return failure;
  }
  return checkPrerequisites(match, l4Proto);
}

std::optional<Failure> decodeActions(std::span<const uint8_t> bytes, std::vector<FlowAction>& actions, bool* toTable) {
  Reader reader(bytes);
  while (reader.remaining() > 0) {
    uint16_t type = reader.u16();
    uint16_t length = reader.u16();
    if (!reader.ok() || length < 8 || length % 8 != 0 || length - 4u > reader.remaining())
      return Failure{kBadAction, kActBadLen};
    Reader body(reader.bytes(length - 4u));
    FlowAction action;
    switch (type) {
      case kActOutput: {
        if (length != 16) return Failure{kBadAction, kActBadLen};
        uint32_t port = body.u32();
        uint16_t maxLen = body.u16();
        if (port == kPortTable && toTable) {
          *toTable = true;
          continue;
        }
        if (port >= 1 && port <= kPortMax) {
          action.kind = FlowAction::Kind::Output;
          action.port = port;
        } else if (port == kPortFlood) action.kind = FlowAction::Kind::Flood;
        else if (port == kPortAll) action.kind = FlowAction::Kind::AllPorts;
        else if (port == kPortNormal) action.kind = FlowAction::Kind::Normal;
        else if (port == kPortController) {
          action.kind = FlowAction::Kind::Controller;
          action.maxLen = maxLen;
        } else return Failure{kBadAction, kActBadOutPort};  // IN_PORT, TABLE, LOCAL, ANY, 0
        break;
      }
      case kActPushVlan: {
        if (length != 8) return Failure{kBadAction, kActBadLen};
        // Every frame already belongs to a VLAN here and each egress port's mode decides the tag,
        // so pushing one only needs to undo an earlier POP_VLAN; SET_FIELD vlan_vid picks the VLAN.
        if (body.u16() != kEtherTypeVlan) return Failure{kBadAction, kActBadArgument};
        if (!actions.empty() && actions.back().kind == FlowAction::Kind::StripVlan) actions.pop_back();
        continue;
      }
      case kActPopVlan:
        if (length != 8) return Failure{kBadAction, kActBadLen};
        action.kind = FlowAction::Kind::StripVlan;
        break;
      case kActSetField: {
        uint16_t oxmClass = body.u16();
        uint8_t fieldAndMask = body.u8();
        uint8_t payload = body.u8();
        if (!body.ok() || oxmClass != kOxmClassBasic || (fieldAndMask >> 1) != kOxmVlanVid || (fieldAndMask & 1))
          return Failure{kBadAction, kActBadSetType};
        if (payload != 2 || length != 16) return Failure{kBadAction, kActBadSetLen};
        uint16_t vid = body.u16() & 0x0fff;  // OFPVID_PRESENT may or may not be set, as in Open vSwitch
        if (vid < kMinVlan || vid > kMaxVlan) return Failure{kBadAction, kActBadSetArgument};
        action.kind = FlowAction::Kind::SetVlan;
        action.vlan = vid;
        break;
      }
      default: return Failure{kBadAction, kActBadType};
    }
    actions.push_back(action);
  }
  return std::nullopt;
}

std::optional<Failure> decodeInstructions(std::span<const uint8_t> bytes, std::vector<FlowAction>& actions) {
  Reader reader(bytes);
  bool sawApply = false;
  while (reader.remaining() > 0) {
    uint16_t type = reader.u16();
    uint16_t length = reader.u16();
    if (!reader.ok() || length < 8 || length % 8 != 0 || length - 4u > reader.remaining())
      return Failure{kBadInstruction, kInstBadLen};
    auto body = reader.bytes(length - 4u);
    if (type == kInstClearActions) continue;  // no action set to clear: strata applies actions at once
    if (type != kInstApplyActions && type != kInstWriteActions) return Failure{kBadInstruction, kInstUnsupported};
    if (sawApply) return Failure{kBadInstruction, kInstUnsupported};  // one action list per rule
    sawApply = true;
    // WRITE_ACTIONS on the only table runs at the end of the pipeline, which is now.
    if (auto failure = decodeActions(body.subspan(4), actions)) return failure;
  }
  return std::nullopt;
}

void encodeMatch(Writer& out, const FlowMatch& match) {
  size_t start = out.size();
  out.u16(1);  // OFPMT_OXM
  out.u16(0);  // length, patched below
  if (match.inPort) {
    uint8_t port[4] = {static_cast<uint8_t>(*match.inPort >> 24), static_cast<uint8_t>(*match.inPort >> 16),
                       static_cast<uint8_t>(*match.inPort >> 8), static_cast<uint8_t>(*match.inPort)};
    putOxm(out, kOxmInPort, port, 4);
  }
  auto maskOf = [](const std::optional<MacAddress>& mask) { return mask ? mask->data() : nullptr; };
  if (match.dstMac) putOxm(out, kOxmEthDst, match.dstMac->data(), 6, maskOf(match.dstMacMask));
  if (match.srcMac) putOxm(out, kOxmEthSrc, match.srcMac->data(), 6, maskOf(match.srcMacMask));
  std::optional<uint16_t> etherType = match.etherType;
  if (match.ipv4Src || match.ipv4Dst) etherType = kEtherTypeIpv4;
  if (match.ipv6Src || match.ipv6Dst) etherType = kEtherTypeIpv6;
  if (etherType) putOxm16(out, kOxmEthType, *etherType);
  if (match.vlan) putOxm16(out, kOxmVlanVid, static_cast<uint16_t>(kVidPresent | *match.vlan));
  if (match.ipProto) putOxm(out, kOxmIpProto, &*match.ipProto, 1);
  if (match.ipv4Src) putPrefix(out, kOxmIpv4Src, *match.ipv4Src, 4);
  if (match.ipv4Dst) putPrefix(out, kOxmIpv4Dst, *match.ipv4Dst, 4);
  if (match.ipv6Src) putPrefix(out, kOxmIpv6Src, *match.ipv6Src, 16);
  if (match.ipv6Dst) putPrefix(out, kOxmIpv6Dst, *match.ipv6Dst, 16);
  bool udp = match.ipProto && *match.ipProto == kProtoUdp;
  if (match.l4Src) putOxm16(out, udp ? kOxmUdpSrc : kOxmTcpSrc, *match.l4Src);
  if (match.l4Dst) putOxm16(out, udp ? kOxmUdpDst : kOxmTcpDst, *match.l4Dst);
  out.patch16(start + 2, static_cast<uint16_t>(out.size() - start));
  out.padTo8(start);
}

void encodeInPortMatch(Writer& out, uint32_t port) {
  FlowMatch match;
  match.inPort = port;
  encodeMatch(out, match);
}

void encodeInstructions(Writer& out, const std::vector<FlowAction>& actions) {
  if (actions.empty() || actions.front().kind == FlowAction::Kind::Drop) return;  // no instructions: drop
  size_t start = out.size();
  out.u16(kInstApplyActions);
  out.u16(0);
  out.zeros(4);
  for (const FlowAction& action : actions) {
    switch (action.kind) {
      case FlowAction::Kind::Output:
      case FlowAction::Kind::Mirror: putOutput(out, action.port); break;  // a mirror is an output to OpenFlow
      case FlowAction::Kind::Flood: putOutput(out, kPortFlood); break;
      case FlowAction::Kind::AllPorts: putOutput(out, kPortAll); break;
      case FlowAction::Kind::Normal: putOutput(out, kPortNormal); break;
      case FlowAction::Kind::Controller: putOutput(out, kPortController, action.maxLen); break;
      case FlowAction::Kind::StripVlan:
        out.u16(kActPopVlan);
        out.u16(8);
        out.zeros(4);
        break;
      case FlowAction::Kind::SetVlan:
        out.u16(kActSetField);
        out.u16(16);
        putOxm16(out, kOxmVlanVid, static_cast<uint16_t>(kVidPresent | action.vlan));
        out.zeros(6);
        break;
      case FlowAction::Kind::Drop: break;
    }
    if (action.kind == FlowAction::Kind::Drop) break;  // nothing after a drop runs
  }
  out.patch16(start + 2, static_cast<uint16_t>(out.size() - start));
}

bool outputsTo(const std::vector<FlowAction>& actions, uint32_t port) {
  for (const FlowAction& action : actions) {
    switch (action.kind) {
      case FlowAction::Kind::Output: case FlowAction::Kind::Mirror: if (action.port == port) return true; break;
      case FlowAction::Kind::Flood: if (port == kPortFlood) return true; break;
      case FlowAction::Kind::AllPorts: if (port == kPortAll) return true; break;
      case FlowAction::Kind::Normal: if (port == kPortNormal) return true; break;
      case FlowAction::Kind::Controller: if (port == kPortController) return true; break;
      default: break;
    }
  }
  return false;
}

}  // namespace strata::network::openflow
