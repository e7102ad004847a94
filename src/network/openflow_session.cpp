#include "network/openflow_session.h"

#include <algorithm>

#include "network/openflow_codec.h"

namespace strata::network {

using namespace openflow;

namespace {

constexpr size_t kErrorDataBytes = 64;          // of the refused request, as the specification asks
constexpr size_t kMultipartHeaderBytes = 16;
constexpr size_t kFlowModFixedBytes = 48;       // header to the match (also FLOW stats request: 16 + 32)
constexpr size_t kPacketOutFixedBytes = 24;
constexpr uint16_t kReplyMore = 1;
constexpr uint32_t kOfpRNoMatch = 0, kOfpRAction = 1;

uint64_t datapathIdOf(const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a: a stable id per switch name
  for (char c : name) hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return hash & 0x0000ffffffffffffull;
}

void putString(Writer& out, const std::string& text, size_t field) {
  size_t n = std::min(text.size(), field - 1);
  out.bytes(text.data(), n);
  out.zeros(field - n);
}

}  // namespace

OpenFlowSession::OpenFlowSession(Switch& fabric, std::string switchName, std::vector<uint8_t>& out)
    : switch_(fabric), name_(std::move(switchName)), out_(out) {}

void OpenFlowSession::header(uint8_t type, uint32_t xid, size_t length) {
  Writer w(out_);
  w.u8(kVersion);
  w.u8(type);
  w.u16(static_cast<uint16_t>(length));
  w.u32(xid);
}

void OpenFlowSession::start() {
  header(kHello, 0, 16);
  Writer w(out_);
  w.u16(1);  // OFPHET_VERSIONBITMAP
  w.u16(8);
  w.u32(1u << kVersion);
}

void OpenFlowSession::error(std::span<const uint8_t> request, Failure failure) {
  size_t data = std::min(request.size(), kErrorDataBytes);
  header(kError, request.size() >= 8 ? Reader(request.subspan(4)).u32() : 0, kHeaderBytes + 4 + data);
  Writer w(out_);
  w.u16(failure.type);
  w.u16(failure.code);
  w.bytes(request.data(), data);
}

size_t OpenFlowSession::consume(std::span<const uint8_t> stream, const std::function<bool()>& mayContinue,
                                bool& open) {
  size_t used = 0;
  open = true;
  while (open && stream.size() - used >= kHeaderBytes && mayContinue()) {
    size_t length = loadBe16(stream.data() + used + 2);
    if (length < kHeaderBytes) {
      error(stream.subspan(used, kHeaderBytes), {kBadRequest, kBadLen});
      open = false;
      break;
    }
    if (stream.size() - used < length) break;
    open = handle(stream.subspan(used, length));
    used += length;
  }
  return used;
}

bool OpenFlowSession::handle(std::span<const uint8_t> message) {
  if (message.size() < kHeaderBytes || loadBe16(message.data() + 2) != message.size()) {
    error(message, {kBadRequest, kBadLen});  // not one framed message: nothing after it can be trusted
    return false;
  }
  Reader reader(message);
  uint8_t version = reader.u8();
  uint8_t type = reader.u8();
  reader.skip(2);
  uint32_t xid = reader.u32();
  if (!negotiated_) {
    if (type == kHello) return hello(message);
    error(message, {kHelloFailed, 1});  // OFPHFC_EPERM: nothing before HELLO
    return false;
  }
  if (version != kVersion) {
    error(message, {kBadRequest, kBadVersion});
    return true;
  }
  auto fixed = [&](size_t bytes) {
    if (message.size() == bytes) return true;
    error(message, {kBadRequest, kBadLen});
    return false;
  };
  std::optional<Failure> failure;
  switch (type) {
    case kHello: break;  // a repeated HELLO changes nothing
    case kEchoRequest:
      header(kEchoReply, xid, message.size());
      out_.insert(out_.end(), message.begin() + kHeaderBytes, message.end());
      break;
    case kEchoReply: break;
    case kFeaturesRequest: if (fixed(kHeaderBytes)) features(xid); break;
    case kGetConfigRequest: if (fixed(kHeaderBytes)) getConfig(xid); break;
    case kSetConfig:
      if (fixed(12)) {
        configFlags_ = reader.u16();
        missSendLen_ = reader.u16();
      }
      break;
    case kBarrierRequest: if (fixed(kHeaderBytes)) header(kBarrierReply, xid, kHeaderBytes); break;
    case kFlowMod: failure = flowMod(message); break;
    case kPacketOut: failure = packetOut(message); break;
    case kMultipartRequest: failure = multipart(message); break;
    case kExperimenter: failure = Failure{kBadRequest, kBadExperimenter}; break;
    default: failure = Failure{kBadRequest, kBadType}; break;
  }
  if (failure) error(message, *failure);
  return true;
}

bool OpenFlowSession::hello(std::span<const uint8_t> message) {
  Reader reader(message.subspan(kHeaderBytes));
  std::optional<bool> bitmapHasOurs;
  while (reader.remaining() >= 4) {
    uint16_t type = reader.u16();
    uint16_t length = reader.u16();
    if (length < 4 || length - 4u > reader.remaining()) break;  // a malformed element ends the list
    Reader element(reader.bytes(length - 4u));
    reader.skip(std::min<size_t>((8 - length % 8) % 8, reader.remaining()));
    if (type == 1 && element.remaining() >= 4) bitmapHasOurs = (element.u32() & (1u << kVersion)) != 0;
  }
  // Without a bitmap the lower of both header versions is used, and that must be 1.3.
  bool agreed = bitmapHasOurs ? *bitmapHasOurs : message[0] >= kVersion;
  if (!agreed) {
    error(message, {kHelloFailed, 0});  // OFPHFC_INCOMPATIBLE
    return false;
  }
  negotiated_ = true;
  return true;
}

void OpenFlowSession::features(uint32_t xid) {
  header(kFeaturesReply, xid, 32);
  Writer w(out_);
  w.u64(datapathIdOf(name_));
  w.u32(0);  // n_buffers: frames are never buffered, PACKET_IN carries them whole
  w.u8(1);   // n_tables
  w.u8(0);   // auxiliary_id
  w.zeros(2);
  w.u32(1 | 2 | 4);  // FLOW_STATS, TABLE_STATS, PORT_STATS
  w.u32(0);
}

void OpenFlowSession::getConfig(uint32_t xid) {
  header(kGetConfigReply, xid, 12);
  Writer w(out_);
  w.u16(configFlags_);
  w.u16(missSendLen_);
}

std::optional<Failure> OpenFlowSession::flowMod(std::span<const uint8_t> message) {
  if (message.size() < kFlowModFixedBytes + 8) return Failure{kBadRequest, kBadLen};
  Reader reader(message.subspan(kHeaderBytes));
  uint64_t cookie = reader.u64(), cookieMask = reader.u64();
  uint8_t tableId = reader.u8(), command = reader.u8();
  uint16_t idle = reader.u16(), hard = reader.u16(), priority = reader.u16();
  uint32_t bufferId = reader.u32(), outPort = reader.u32();
  reader.skip(4);  // out_group: there are no groups
  uint16_t flags = reader.u16();
  reader.skip(2);
  FlowMatch match;
  if (auto failure = decodeMatch(reader, match)) return failure;
  std::vector<FlowAction> actions;
  if (auto failure = decodeInstructions(message.subspan(message.size() - reader.remaining()), actions)) return failure;
  auto key = FlowTable::compile(match);
  if (!key) return Failure{kBadMatch, kMatchBadPrereq};
  bool deleting = command == kDelete || command == kDeleteStrict;
  if (command > kDeleteStrict) return Failure{kFlowModFailed, kFmBadCommand};
  if (tableId != 0 && !(deleting && tableId == kTableAll)) return Failure{kFlowModFailed, kFmBadTableId};
  if (bufferId != kNoBuffer) return Failure{kBadRequest, kBufferUnknown};

  FlowTable& table = switch_.flows();
  // ADD replaces the rule of identical match and priority; the others select by cookie (under its
  // mask) and then strictly (the same) or loosely (the request's match covers the rule's).
  bool strict = command == kModifyStrict || command == kDeleteStrict || command == kAdd;
  auto selected = [&](const FlowRule& rule, const FlowTable::MaskedKey& compiled) {
    if (command != kAdd && (rule.cookie & cookieMask) != (cookie & cookieMask)) return false;
    return strict ? rule.priority == priority && compiled == *key : compiled.within(*key);
  };
  if (deleting) {
    table.removeIf([&](const FlowRule& rule, const FlowTable::MaskedKey& compiled) {
      return selected(rule, compiled) && (outPort == kPortAny || outputsTo(rule.actions, outPort));
    });
    return std::nullopt;
  }
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < table.rules().size(); ++i)
    if (selected(table.rules()[i], table.compiled(i))) ids.push_back(table.rules()[i].id);
  bool reset = flags & kFlagResetCounts;
  if (command == kModify || command == kModifyStrict) {
    for (uint64_t id : ids) {
      FlowRule* rule = table.find(id);
      rule->actions = actions;
      if (reset) rule->packets = rule->bytes = 0;
    }
    return std::nullopt;
  }
  if (flags & kFlagCheckOverlap) {
    for (size_t i = 0; i < table.rules().size(); ++i)
      if (table.rules()[i].priority == priority && table.compiled(i) != *key && table.compiled(i).overlaps(*key))
        return Failure{kFlowModFailed, kFmOverlap};
  }
  // ADD replaces a rule of the same match and priority, keeping its counters unless told otherwise.
  uint64_t packets = 0, bytes = 0;
  for (uint64_t id : ids) {
    packets += table.find(id)->packets;
    bytes += table.find(id)->bytes;
    table.remove(id);
  }
  FlowRule rule;
  rule.priority = priority;
  rule.match = match;
  rule.actions = std::move(actions);
  rule.cookie = cookie;
  rule.idleTimeoutS = idle;
  rule.hardTimeoutS = hard;
  rule.createdMs = switch_.nowMs();
  auto id = table.add(std::move(rule));
  if (!id) return Failure{kFlowModFailed, table.size() >= FlowTable::kMaxRules ? kFmTableFull : kFmUnknown};
  if (!reset && !ids.empty()) {
    table.find(*id)->packets = packets;
    table.find(*id)->bytes = bytes;
  }
  return std::nullopt;
}

std::optional<Failure> OpenFlowSession::packetOut(std::span<const uint8_t> message) {
  if (message.size() < kPacketOutFixedBytes) return Failure{kBadRequest, kBadLen};
  Reader reader(message.subspan(kHeaderBytes));
  uint32_t bufferId = reader.u32(), inPort = reader.u32();
  uint16_t actionsBytes = reader.u16();
  if (actionsBytes > message.size() - kPacketOutFixedBytes) return Failure{kBadRequest, kBadLen};
  if (bufferId != kNoBuffer) return Failure{kBadRequest, kBufferUnknown};
  std::optional<PortId> in;
  if (inPort >= 1 && inPort <= kPortMax) {
    if (!switch_.port(inPort)) return Failure{kBadRequest, kBadPort};
    in = inPort;
  } else if (inPort != kPortController && inPort != kPortAny) {
    return Failure{kBadRequest, kBadPort};
  }
  std::vector<FlowAction> actions;
  bool toTable = false;
  auto actionBytes = message.subspan(kPacketOutFixedBytes, actionsBytes);
  if (auto failure = decodeActions(actionBytes, actions, &toTable)) return failure;
  auto frame = message.subspan(kPacketOutFixedBytes + actionsBytes);
  if (frame.size() < kEthernetHeaderBytes) return Failure{kBadRequest, kBadPacket};
  if (toTable && !in) return Failure{kBadRequest, kBadPort};  // the table matches on a real in_port
  if (auto injected = switch_.inject(in, frame, actions); !injected) return Failure{kBadRequest, kBadPacket};
  if (toTable) switch_.receive(*in, frame);
  return std::nullopt;
}

void OpenFlowSession::packetIn(const PacketToController& packet) {
  if (!negotiated_) return;
  constexpr size_t kFixed = kHeaderBytes + 16 + 16 + 2;  // + the 16-byte in_port match
  size_t data = packet.frame.size();
  if (packet.maxLen != kMaxLenNoBuffer) data = std::min<size_t>(data, packet.maxLen);
  data = std::min(data, kMaxMessageBytes - kFixed);
  header(kPacketIn, 0, kFixed + data);
  Writer w(out_);
  w.u32(kNoBuffer);
  w.u16(static_cast<uint16_t>(std::min<size_t>(packet.frame.size(), 0xffff)));
  w.u8(static_cast<uint8_t>(packet.tableMiss ? kOfpRNoMatch : kOfpRAction));
  w.u8(0);  // table_id
  w.u64(packet.cookie);
  encodeInPortMatch(w, packet.inPort == 0 ? kPortController : packet.inPort);
  w.zeros(2);
  w.bytes(packet.frame.data(), data);
}

// ---------------------------------------------------------------- multipart

size_t OpenFlowSession::beginMultipart(uint32_t xid, uint16_t type) {
  size_t start = out_.size();
  header(kMultipartReply, xid, 0);
  Writer w(out_);
  w.u16(type);
  w.u16(0);  // flags, patched by endMultipart
  w.zeros(4);
  return start;
}

void OpenFlowSession::endMultipart(size_t start, bool more) {
  Writer w(out_);
  w.patch16(start + 2, static_cast<uint16_t>(out_.size() - start));
  w.patch16(start + 10, more ? kReplyMore : 0);
}

std::optional<Failure> OpenFlowSession::multipart(std::span<const uint8_t> message) {
  if (message.size() < kMultipartHeaderBytes) return Failure{kBadRequest, kBadLen};
  Reader reader(message.subspan(kHeaderBytes));
  uint16_t type = reader.u16();
  uint16_t flags = reader.u16();
  uint32_t xid = Reader(message.subspan(4)).u32();
  auto body = message.subspan(kMultipartHeaderBytes);
  if (flags & 1) return Failure{kBadRequest, kBadMultipart};  // no request needs more than one message
  auto sized = [&](bool ok) { return ok ? std::nullopt : std::optional<Failure>(Failure{kBadRequest, kBadLen}); };
  switch (type) {
    case kMpDesc:
      if (!body.empty()) return sized(false);
      desc(xid);
      return std::nullopt;
    case kMpFlow:
    case kMpAggregate:
      if (body.size() < 32 + 8) return sized(false);
      return flowStats(xid, body, type == kMpAggregate);
    case kMpTable:
      if (!body.empty()) return sized(false);
      tableStats(xid);
      return std::nullopt;
    case kMpPortStats:
      if (body.size() != 8) return sized(false);
      portStats(xid, Reader(body).u32());
      return std::nullopt;
    case kMpPortDesc:
      if (!body.empty()) return sized(false);
      portDesc(xid);
      return std::nullopt;
    case kMpTableFeatures:  // ovs-ofctl asks for these before a flow-mod (table names)
      if (!body.empty()) return Failure{kBadRequest, kBadMultipart};  // a body would reconfigure tables
      tableFeatures(xid);
      return std::nullopt;
    default: return Failure{kBadRequest, kBadMultipart};
  }
}

void OpenFlowSession::desc(uint32_t xid) {
  size_t start = beginMultipart(xid, kMpDesc);
  Writer w(out_);
  putString(w, "strata", 256);
  putString(w, "strata virtual switch", 256);
  putString(w, "strata", 256);
  putString(w, "none", 32);
  putString(w, "switch " + name_, 256);
  endMultipart(start, false);
}

void OpenFlowSession::tableFeatures(uint32_t xid) {
  size_t start = beginMultipart(xid, kMpTableFeatures);
  size_t entry = out_.size();
  Writer w(out_);
  w.u16(0);  // length, patched
  w.u8(0);   // table_id
  w.zeros(5);
  putString(w, "", 32);
  w.u64(0);  // metadata_match, metadata_write: no metadata
  w.u64(0);
  w.u32(0);  // config
  w.u32(static_cast<uint32_t>(FlowTable::kMaxRules));
  // The properties a controller needs (Open vSwitch insists on them): what can be matched and done.
  auto property = [&](uint16_t type, auto writeBody) {
    size_t at = out_.size();
    w.u16(type);
    w.u16(0);
    writeBody();
    w.patch16(at + 2, static_cast<uint16_t>(out_.size() - at));
    w.padTo8(at);
  };
  auto ids = [&](std::initializer_list<uint16_t> types) {
    for (uint16_t type : types) {
      w.u16(type);
      w.u16(4);
    }
  };
  auto oxms = [&](bool withMasks) {
    for (uint8_t field : {kOxmInPort, kOxmEthDst, kOxmEthSrc, kOxmEthType, kOxmVlanVid, kOxmIpProto, kOxmIpv4Src,
                          kOxmIpv4Dst, kOxmTcpSrc, kOxmTcpDst, kOxmUdpSrc, kOxmUdpDst, kOxmIpv6Src, kOxmIpv6Dst}) {
      bool masked = withMasks && (field == kOxmEthDst || field == kOxmEthSrc || field == kOxmIpv4Src ||
                                  field == kOxmIpv4Dst || field == kOxmIpv6Src || field == kOxmIpv6Dst);
      w.u16(kOxmClassBasic);
      w.u8(static_cast<uint8_t>(field << 1 | (masked ? 1 : 0)));
      w.u8(0);
    }
  };
  auto vlanVid = [&] {
    w.u16(kOxmClassBasic);
    w.u8(kOxmVlanVid << 1);
    w.u8(2);
  };
  auto actions = [&] { ids({kActOutput, kActPushVlan, kActPopVlan, kActSetField}); };
  property(0, [&] { ids({kInstWriteActions, kInstApplyActions, kInstClearActions}); });  // INSTRUCTIONS
  property(2, [] {});                  // NEXT_TABLES: there is one table
  property(4, actions);                // WRITE_ACTIONS
  property(6, actions);                // APPLY_ACTIONS
  property(8, [&] { oxms(true); });    // MATCH
  property(10, [&] { oxms(false); });  // WILDCARDS
  property(12, vlanVid);               // WRITE_SETFIELD
  property(14, vlanVid);               // APPLY_SETFIELD
  w.patch16(entry, static_cast<uint16_t>(out_.size() - entry));
  endMultipart(start, false);
}

void OpenFlowSession::tableStats(uint32_t xid) {
  size_t start = beginMultipart(xid, kMpTable);
  Writer w(out_);
  w.u8(0);
  w.zeros(3);
  w.u32(static_cast<uint32_t>(switch_.flows().size()));
  w.u64(switch_.tableCounters().lookups);
  w.u64(switch_.tableCounters().matched);
  endMultipart(start, false);
}

std::optional<Failure> OpenFlowSession::flowStats(uint32_t xid, std::span<const uint8_t> body, bool aggregate) {
  Reader reader(body);
  uint8_t tableId = reader.u8();
  reader.skip(3);
  uint32_t outPort = reader.u32();
  reader.skip(8);  // out_group, pad
  uint64_t cookie = reader.u64(), cookieMask = reader.u64();
  FlowMatch match;
  if (auto failure = decodeMatch(reader, match)) return failure;
  auto key = FlowTable::compile(match);
  if (!key) return Failure{kBadMatch, kMatchBadPrereq};
  if (tableId != 0 && tableId != kTableAll) return Failure{kBadRequest, kBadTableId};

  const FlowTable& table = switch_.flows();
  uint64_t now = switch_.nowMs();
  uint64_t packets = 0, bytes = 0;
  uint32_t count = 0;
  size_t start = beginMultipart(xid, aggregate ? kMpAggregate : kMpFlow);
  std::vector<uint8_t> entry;
  for (size_t i = 0; i < table.rules().size(); ++i) {
    const FlowRule& rule = table.rules()[i];
    if ((rule.cookie & cookieMask) != (cookie & cookieMask) || !table.compiled(i).within(*key)) continue;
    if (outPort != kPortAny && !outputsTo(rule.actions, outPort)) continue;
    packets += rule.packets;
    bytes += rule.bytes;
    ++count;
    if (aggregate) continue;
    entry.clear();
    Writer w(entry);
    uint64_t ageMs = now > rule.createdMs ? now - rule.createdMs : 0;
    w.u16(0);  // length, patched
    w.u8(0);   // table_id
    w.zeros(1);
    w.u32(static_cast<uint32_t>(ageMs / 1000));
    w.u32(static_cast<uint32_t>(ageMs % 1000 * 1'000'000));
    w.u16(rule.priority);
    w.u16(rule.idleTimeoutS);
    w.u16(rule.hardTimeoutS);
    w.u16(0);  // flags
    w.zeros(4);
    w.u64(rule.cookie);
    w.u64(rule.packets);
    w.u64(rule.bytes);
    encodeMatch(w, rule.match);
    encodeInstructions(w, rule.actions);
    w.patch16(0, static_cast<uint16_t>(entry.size()));
    if (out_.size() - start + entry.size() > kMaxMessageBytes) {  // split: this one says more follow
      endMultipart(start, true);
      start = beginMultipart(xid, kMpFlow);
    }
    out_.insert(out_.end(), entry.begin(), entry.end());
  }
  if (aggregate) {
    Writer w(out_);
    w.u64(packets);
    w.u64(bytes);
    w.u32(count);
    w.zeros(4);
  }
  endMultipart(start, false);
  return std::nullopt;
}

void OpenFlowSession::portStats(uint32_t xid, uint32_t portNo) {
  size_t start = beginMultipart(xid, kMpPortStats);
  for (const auto& port : switch_.ports()) {
    if (portNo != kPortAny && port.id != portNo) continue;
    Writer w(out_);
    const PortCounters& c = port.counters;
    w.u32(port.id);
    w.zeros(4);
    for (uint64_t value : {c.rxPackets, c.txPackets, c.rxBytes, c.txBytes, c.rxDropped, uint64_t{0}})
      w.u64(value);
    w.zeros(6 * 8);  // rx/tx errors, frame, overrun, CRC errors, collisions: none in software
    w.u32(0);        // duration: not tracked per port
    w.u32(0);
  }
  endMultipart(start, false);
}

void OpenFlowSession::portDesc(uint32_t xid) {
  size_t start = beginMultipart(xid, kMpPortDesc);
  for (const auto& port : switch_.ports()) putPort(port);
  endMultipart(start, false);
}

void OpenFlowSession::putPort(const Switch::PortInfo& port) {
  Writer w(out_);
  w.u32(port.id);
  w.zeros(4);
  w.zeros(6);  // hw_addr: switch ports have none of their own
  w.zeros(2);
  putString(w, port.name, 16);
  w.u32(0);  // config
  w.u32(4);  // state: OFPPS_LIVE
  w.zeros(6 * 4);  // features and speeds: virtual
}

void OpenFlowSession::portStatus(bool added, const Switch::PortInfo& port) {
  if (!negotiated_) return;
  header(kPortStatus, 0, kHeaderBytes + 8 + 64);
  Writer w(out_);
  w.u8(added ? 0 : 1);  // OFPPR_ADD, OFPPR_DELETE
  w.zeros(7);
  putPort(port);
}

}  // namespace strata::network
