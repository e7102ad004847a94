#include "network/switch.h"

#include <charconv>
#include <chrono>
#include <cstring>

#include <fmt/core.h>

namespace strata::network {
namespace {

uint64_t steadyClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool validVlan(unsigned vlan) { return vlan >= kMinVlan && vlan <= kMaxVlan; }

Result<uint16_t> parseVlanNumber(std::string_view text) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || !validVlan(value))
    return Error{fmt::format("'{}' is not a VLAN id ({}-{})", text, kMinVlan, kMaxVlan)};
  return static_cast<uint16_t>(value);
}

}  // namespace

// ---------------------------------------------------------------- PortVlans

PortVlans PortVlans::access(uint16_t vlan) {
  PortVlans v;
  v.accessVlan = vlan;
  return v;
}

PortVlans PortVlans::trunk(std::span<const uint16_t> vlans, uint16_t nativeVlan) {
  PortVlans v;
  v.mode = Mode::Trunk;
  for (uint16_t vlan : vlans) v.allowed.set(vlan);
  v.nativeVlan = nativeVlan;
  return v;
}

bool PortVlans::carries(uint16_t vlan) const {
  if (mode == Mode::Access) return vlan == accessVlan;
  return allowed.test(vlan) || (nativeVlan != 0 && vlan == nativeVlan);
}

Result<PortVlans> PortVlans::parse(std::string_view text) {
  PortVlans vlans;
  bool sawAccess = false, inTrunkList = false;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view token = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (token.rfind("vlan=", 0) == 0) {
      auto vlan = parseVlanNumber(token.substr(5));
      if (!vlan) return vlan.error();
      vlans.accessVlan = *vlan;
      sawAccess = true;
      inTrunkList = false;
    } else if (token.rfind("native=", 0) == 0) {
      auto vlan = parseVlanNumber(token.substr(7));
      if (!vlan) return vlan.error();
      vlans.nativeVlan = *vlan;
      inTrunkList = false;
    } else {
      if (token.rfind("trunk=", 0) == 0) {
        vlans.mode = Mode::Trunk;
        inTrunkList = true;
        token = token.substr(6);
      } else if (!inTrunkList) {
        return Error{fmt::format("'{}': expected vlan=N, trunk=N,M,A-B or native=N", token)};
      }
      size_t dash = token.find('-');
      auto first = parseVlanNumber(token.substr(0, dash));
      if (!first) return first.error();
      auto last = dash == std::string_view::npos ? first : parseVlanNumber(token.substr(dash + 1));
      if (!last) return last.error();
      if (*last < *first) return Error{fmt::format("'{}': empty VLAN range", token)};
      for (unsigned vlan = *first; vlan <= *last; ++vlan) vlans.allowed.set(vlan);
    }
  }
  if (sawAccess && vlans.mode == Mode::Trunk) return Error{"a port is either vlan=N (access) or trunk=..., not both"};
  if (vlans.nativeVlan != 0 && vlans.mode != Mode::Trunk) return Error{"native=N applies to trunk ports only"};
  return vlans;
}

std::string PortVlans::describe() const {
  if (mode == Mode::Access) return fmt::format("vlan={}", accessVlan);
  std::string out = "trunk=";
  bool first = true;
  for (unsigned vlan = kMinVlan; vlan <= kMaxVlan; ++vlan) {
    if (!allowed.test(vlan)) continue;
    unsigned last = vlan;
    while (last + 1 <= kMaxVlan && allowed.test(last + 1)) ++last;
    out += fmt::format("{}{}", first ? "" : ",", vlan);
    if (last != vlan) out += fmt::format("-{}", last);
    first = false;
    vlan = last;
  }
  if (nativeVlan != 0) out += fmt::format(",native={}", nativeVlan);
  return out;
}

// ---------------------------------------------------------------- Switch

struct Switch::Port {
  PortId id;
  std::string name;
  PacketPort* port;
  PortVlans vlans;
  PortCounters counters;
  std::optional<PortId> mirrorTo;
};

// One received frame and the wire forms it takes on the way out, built at most
// once each: untagged (access ports, native VLANs, strip_vlan) and tagged with
// the current VLAN (trunks). An untagged ingress frame leaves as-is, no copy.
class Switch::Egress {
 public:
  Egress(std::span<const uint8_t> frame, const FrameOffload& offload, size_t etherTypeOffset, uint16_t priorityBits)
      : frame_(frame),
        offload_(offload),
        untaggedOffload_(offload),
        ingressTagged_(etherTypeOffset != 12),
        priorityBits_(priorityBits) {
    if (ingressTagged_) untaggedOffload_.shiftHeaders(-static_cast<int>(kVlanTagBytes));
    taggedOffload_ = untaggedOffload_;
    taggedOffload_.shiftHeaders(static_cast<int>(kVlanTagBytes));
  }

  std::span<const uint8_t> original() const { return frame_; }
  // The offload of each wire form: checksum start and header length move with the tag.
  const FrameOffload& originalOffload() const { return offload_; }
  const FrameOffload& untaggedOffload() const { return untaggedOffload_; }
  const FrameOffload& taggedOffload() const { return taggedOffload_; }
  std::span<const uint8_t> untagged() {
    if (!ingressTagged_) return frame_;
    if (untagged_.empty()) {
      untagged_.reserve(frame_.size() - kVlanTagBytes);
      untagged_.assign(frame_.begin(), frame_.begin() + 12);
      untagged_.insert(untagged_.end(), frame_.begin() + 16, frame_.end());
    }
    return untagged_;
  }
  std::span<const uint8_t> tagged(uint16_t vlan) {
    if (tagged_.empty()) {
      auto body = untagged();
      tagged_.resize(body.size() + kVlanTagBytes);
      std::memcpy(tagged_.data(), body.data(), 12);
      storeBe16(tagged_.data() + 12, kEtherTypeVlan);
      std::memcpy(tagged_.data() + 16, body.data() + 12, body.size() - 12);
      taggedVlan_ = 0;
    }
    if (taggedVlan_ != vlan) {
      storeBe16(tagged_.data() + 14, static_cast<uint16_t>(priorityBits_ | vlan));
      taggedVlan_ = vlan;
    }
    return tagged_;
  }

  bool stripped = false;  // a strip_vlan action ran

 private:
  std::span<const uint8_t> frame_;
  FrameOffload offload_, untaggedOffload_, taggedOffload_;
  bool ingressTagged_;
  uint16_t priorityBits_;  // PCP and DEI of the ingress tag, kept on re-tagging
  uint16_t taggedVlan_ = 0;
  std::vector<uint8_t> untagged_, tagged_;
};

Switch::Switch() : Switch(Options{}) {}

Switch::Switch(Options options)
    : options_(std::move(options)), macs_(options_.macTableLimit, options_.macAgingMs) {
  if (!options_.clockMs) options_.clockMs = steadyClockMs;
}

Switch::~Switch() {
  for (auto& port : ports_)
    if (port) port->port->setReceiveHandler(nullptr);
}

Switch::Port* Switch::portAt(PortId id) const {
  if (id == 0 || id > ports_.size()) return nullptr;
  return ports_[id - 1].get();
}

Result<PortId> Switch::addPort(std::string name, PacketPort& port, PortVlans vlans) {
  if (name.empty()) return Error{"a switch port needs a name"};
  if (portByName(name)) return Error{fmt::format("the switch already has a port named '{}'", name)};
  if (vlans.mode == PortVlans::Mode::Access && !validVlan(vlans.accessVlan))
    return Error{fmt::format("access VLAN {} is outside {}-{}", vlans.accessVlan, kMinVlan, kMaxVlan)};
  if (vlans.mode == PortVlans::Mode::Trunk && vlans.nativeVlan != 0 && !validVlan(vlans.nativeVlan))
    return Error{fmt::format("native VLAN {} is outside {}-{}", vlans.nativeVlan, kMinVlan, kMaxVlan)};
  vlans.allowed.reset(0);
  vlans.allowed.reset(4095);
  size_t slot = 0;
  while (slot < ports_.size() && ports_[slot]) ++slot;
  if (slot == ports_.size()) ports_.emplace_back();
  auto id = static_cast<PortId>(slot + 1);
  ports_[slot] = std::make_unique<Port>(Port{id, std::move(name), &port, vlans, {}, std::nullopt});
  port.setReceiveHandler(
      [this, id](std::span<const uint8_t> frame, const FrameOffload& offload) { receive(id, frame, offload); });
  return id;
}

void Switch::removePort(PortId id) {
  Port* port = portAt(id);
  if (!port) return;
  port->port->setReceiveHandler(nullptr);
  macs_.forgetPort(id);
  for (auto& other : ports_)
    if (other && other->mirrorTo == id) other->mirrorTo.reset();
  ports_[id - 1].reset();
  while (!ports_.empty() && !ports_.back()) ports_.pop_back();
}

std::optional<PortId> Switch::portByName(std::string_view name) const {
  for (const auto& port : ports_)
    if (port && port->name == name) return port->id;
  return std::nullopt;
}

std::optional<Switch::PortInfo> Switch::port(PortId id) const {
  const Port* port = portAt(id);
  if (!port) return std::nullopt;
  return PortInfo{port->id, port->name, port->vlans, port->counters, port->mirrorTo};
}

std::vector<Switch::PortInfo> Switch::ports() const {
  std::vector<PortInfo> out;
  for (const auto& port : ports_)
    if (port) out.push_back(*this->port(port->id));
  return out;
}

Result<void> Switch::setMirror(PortId source, std::optional<PortId> destination) {
  Port* watched = portAt(source);
  if (!watched) return Error{fmt::format("no port {}", source)};
  if (destination && (!portAt(*destination) || *destination == source))
    return Error{fmt::format("cannot mirror port {} to port {}", source, *destination)};
  watched->mirrorTo = destination;
  return {};
}

void Switch::expireMacs() { macs_.expire(options_.clockMs()); }

void Switch::dropOnPort(Port& in, uint64_t& reason) {
  ++reason;
  ++in.counters.rxDropped;
}

void Switch::receive(PortId id, std::span<const uint8_t> frame, const FrameOffload& offload) {
  Port* in = portAt(id);
  if (!in) return;
  nowMs_ = options_.clockMs();
  ++in->counters.rxPackets;
  in->counters.rxBytes += frame.size();
  if (frame.size() < kEthernetHeaderBytes) return dropOnPort(*in, drops_.runt);
  if (frame.size() > options_.maxFrameBytes) return dropOnPort(*in, drops_.oversize);

  size_t etherTypeOffset = 12;
  uint16_t etherType = loadBe16(frame.data() + 12);
  uint16_t taggedVlan = 0, priorityBits = 0;
  if (etherType == kEtherTypeQinQ) return dropOnPort(*in, drops_.badVlanTag);
  if (etherType == kEtherTypeVlan) {
    if (frame.size() < kEthernetHeaderBytes + kVlanTagBytes) return dropOnPort(*in, drops_.runt);
    uint16_t tci = loadBe16(frame.data() + 14);
    uint16_t inner = loadBe16(frame.data() + 16);
    taggedVlan = tci & 0x0fff;
    priorityBits = tci & 0xf000;
    if (taggedVlan == 0x0fff || inner == kEtherTypeVlan || inner == kEtherTypeQinQ)
      return dropOnPort(*in, drops_.badVlanTag);
    etherTypeOffset = 16;
  }

  // Classify: a tagged frame (VID 0 is a priority tag only, i.e. untagged) must be on a
  // trunk carrying its VLAN; an untagged one takes the access or native VLAN.
  const PortVlans& rules = in->vlans;
  uint16_t vlan;
  if (taggedVlan != 0) {
    if (rules.mode == PortVlans::Mode::Access || !rules.carries(taggedVlan))
      return dropOnPort(*in, drops_.vlanNotAllowed);
    vlan = taggedVlan;
  } else {
    vlan = rules.mode == PortVlans::Mode::Access ? rules.accessVlan : rules.nativeVlan;
    if (vlan == 0) return dropOnPort(*in, drops_.vlanNotAllowed);
  }
  if (isMulticast(frame.data() + 6)) return dropOnPort(*in, drops_.badSourceMac);
  // The checksummed part must lie beyond the L2 header, so tag pushes and pops can move it.
  if (!validateOffload(offload, frame.size()) || (offload.needsChecksum && offload.checksumStart < etherTypeOffset + 2))
    return dropOnPort(*in, drops_.badOffload);

  if (in->mirrorTo) sendMirrorCopy(*in, frame, offload);
  if (!macs_.learn(vlan, frame.data() + 6, id, nowMs_)) ++drops_.learningFull;

  Egress egress(frame, offload, etherTypeOffset, priorityBits);
  if (!flows_.empty()) {
    FlowKey key;
    extractFlowKey(frame, etherTypeOffset, id, vlan, key);
    ++table_.lookups;
    if (FlowRule* rule = flows_.lookup(key)) {
      ++table_.matched;
      ++rule->packets;
      rule->bytes += frame.size();
      rule->lastUsedMs = nowMs_;
      return applyActions(in, egress, rule->actions, rule, vlan);
    }
  }
  forwardNormal(in, egress, vlan);
}

Result<void> Switch::inject(std::optional<PortId> inId, std::span<const uint8_t> frame,
                            const std::vector<FlowAction>& actions) {
  if (frame.size() < kEthernetHeaderBytes || frame.size() > options_.maxFrameBytes)
    return Error{fmt::format("a {}-byte frame is not a frame this switch carries", frame.size())};
  Port* in = inId ? portAt(*inId) : nullptr;
  if (inId && !in) return Error{fmt::format("no port {}", *inId)};
  nowMs_ = options_.clockMs();
  size_t etherTypeOffset = 12;
  uint16_t vlan = 0, priorityBits = 0;
  if (loadBe16(frame.data() + 12) == kEtherTypeVlan) {
    if (frame.size() < kEthernetHeaderBytes + kVlanTagBytes) return Error{"a tagged frame shorter than its tag"};
    uint16_t tci = loadBe16(frame.data() + 14);
    vlan = tci & 0x0fff;
    priorityBits = tci & 0xf000;
    etherTypeOffset = 16;
  }
  if (!validVlan(vlan) && in)
    vlan = in->vlans.mode == PortVlans::Mode::Access ? in->vlans.accessVlan : in->vlans.nativeVlan;
  if (!validVlan(vlan)) vlan = kMinVlan;
  Egress egress(frame, FrameOffload{}, etherTypeOffset, priorityBits);  // a controller's frame is finished
  applyActions(in, egress, actions, nullptr, vlan);
  return {};
}

void Switch::setControllerHandler(std::function<void(const PacketToController&)> handler) {
  toController_ = std::move(handler);
}

void Switch::forwardNormal(Port* in, Egress& egress, uint16_t vlan) {
  const uint8_t* dst = egress.original().data();
  if (isMulticast(dst)) return flood(in, egress, vlan);
  auto known = macs_.lookup(vlan, dst, nowMs_);
  if (!known) return flood(in, egress, vlan);
  Port* out = portAt(*known);
  if (out && out != in && out->vlans.carries(vlan)) transmit(*out, egress, vlan);
  // Known on the port it came from: the destination already saw it on that segment.
}

void Switch::flood(Port* in, Egress& egress, uint16_t vlan, bool anyVlan) {
  for (auto& port : ports_)
    if (port && port.get() != in && (anyVlan || port->vlans.carries(vlan))) transmit(*port, egress, vlan);
}

void Switch::applyActions(Port* in, Egress& egress, const std::vector<FlowAction>& actions, const FlowRule* rule,
                          uint16_t vlan) {
  if (actions.empty()) {
    ++drops_.byRule;
    return;
  }
  for (const FlowAction& action : actions) {
    switch (action.kind) {
      case FlowAction::Kind::Output:
        // Explicit outputs go where the rule says, whatever VLANs that port carries; never back out of in.
        if (Port* out = portAt(action.port); out && out != in) transmit(*out, egress, vlan);
        break;
      case FlowAction::Kind::AllPorts: flood(in, egress, vlan, true); break;
      case FlowAction::Kind::Controller:
        if (toController_) {
          bool tableMiss = rule && rule->priority == 0;
          toController_({in ? in->id : 0, egress.original(), tableMiss, rule ? rule->cookie : 0, action.maxLen});
        }
        break;
      case FlowAction::Kind::Flood: flood(in, egress, vlan); break;
      case FlowAction::Kind::Normal: forwardNormal(in, egress, vlan); break;
      case FlowAction::Kind::Drop: ++drops_.byRule; return;
      case FlowAction::Kind::SetVlan:
        vlan = action.vlan;
        egress.stripped = false;
        break;
      case FlowAction::Kind::StripVlan: egress.stripped = true; break;
      case FlowAction::Kind::Mirror:
        if (Port* out = portAt(action.port)) sendTo(*out, egress.original(), egress.originalOffload());
        break;
    }
  }
}

void Switch::transmit(Port& out, Egress& egress, uint16_t vlan) {
  bool untagged = out.vlans.mode == PortVlans::Mode::Access || egress.stripped || vlan == out.vlans.nativeVlan;
  std::span<const uint8_t> wire = untagged ? egress.untagged() : egress.tagged(vlan);
  const FrameOffload& offload = untagged ? egress.untaggedOffload() : egress.taggedOffload();
  sendTo(out, wire, offload);
  if (out.mirrorTo) sendMirrorCopy(out, wire, offload);
}

void Switch::sendMirrorCopy(const Port& watched, std::span<const uint8_t> wire, const FrameOffload& offload) {
  Port* destination = portAt(*watched.mirrorTo);
  if (!destination || destination == &watched) return;
  sendTo(*destination, wire, offload);
}

// Counted as one frame however the port takes it (as-is, or segmented in software).
void Switch::sendTo(Port& out, std::span<const uint8_t> wire, const FrameOffload& offload) {
  if (!sendFinished(*out.port, wire, offload)) {
    ++drops_.badOffload;
    return;
  }
  ++out.counters.txPackets;
  out.counters.txBytes += wire.size();
}

}  // namespace strata::network
