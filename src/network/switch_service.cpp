#include "network/switch_service.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>

#include <fmt/core.h>

#include "base/log.h"
#include "network/flow_spec.h"
#include "network/socket_port.h"
#include "network/tap.h"
#include "network/vxlan_port.h"

namespace strata::network {
namespace {

constexpr size_t kMaxPendingAttach = 64;
constexpr size_t kMaxControlClients = 16;
constexpr size_t kMaxRequestBytes = 64 * 1024;
constexpr auto kAgingInterval = std::chrono::seconds(1);  // MAC aging and flow idle/hard timeouts
constexpr int kClientTimeoutMs = 10000;

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof address.sun_path - 1));
  return address;
}

// Binds a listening socket at path, replacing a stale file but never a live switch's socket.
Result<UniqueFd> listenAt(const std::string& path, int type) {
  auto address = unixAddress(path);
  UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (probe.valid() && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0)
    return Error{fmt::format("{}: a switch of this name is already running", path)};
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return errnoError("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("bind {}", path));
  if (::listen(fd.get(), 64) != 0) return errnoError(fmt::format("listen {}", path));
  return fd;
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += {'\\', c};
    else if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += c;
  }
  return out + "\"";
}

std::string peerName(int fd) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 && credentials.pid > 0)
    return fmt::format("vm-{}", credentials.pid);
  return "vm";
}

}  // namespace

struct SwitchService::Attachment {
  std::string kind;  // "vm" or "tap"
  std::optional<MacAddress> mac;
  std::unique_ptr<PacketPort> port;
};

struct SwitchService::PendingAttach {
  UniqueFd fd;
  std::unique_ptr<LoopTimer> deadline;  // a peer that never says which VLANs it wants frees its slot
};

struct SwitchService::ControlClient {
  UniqueFd fd;
  std::string input, output;
  size_t written = 0;
  bool replied = false;
  std::unique_ptr<LoopTimer> deadline;  // a client that stalls is dropped, never waited for
};

Result<std::unique_ptr<SwitchService>> SwitchService::start(std::string name, EventLoop& loop,
                                                            Switch::Options options) {
  std::unique_ptr<SwitchService> service(new SwitchService(std::move(name), loop, std::move(options)));
  if (auto listening = service->listen(); !listening) return listening.error();
  return service;
}

SwitchService::SwitchService(std::string name, EventLoop& loop, Switch::Options options)
    : name_(std::move(name)), loop_(loop), switch_(std::move(options)) {}

SwitchService::~SwitchService() {
  for (auto& [id, attachment] : attachments_) switch_.removePort(id);
  for (auto& [fd, client] : controlClients_) loop_.unwatch(fd);
  for (auto& [fd, pending] : pendingAttach_) loop_.unwatch(fd);
  if (portsListener_.valid()) {
    loop_.unwatch(portsListener_.get());
    ::unlink(portsPath_.c_str());
  }
  if (controlListener_.valid()) {
    loop_.unwatch(controlListener_.get());
    ::unlink(controlPath_.c_str());
  }
}

Result<void> SwitchService::listen() {
  auto paths = switchPaths(name_);
  if (!paths) return paths.error();
  std::string dir = paths->ports.substr(0, paths->ports.rfind('/'));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errnoError(fmt::format("mkdir {}", dir));
  auto ports = listenAt(paths->ports, SOCK_SEQPACKET);
  if (!ports) return ports.error();
  portsListener_ = std::move(*ports);
  portsPath_ = paths->ports;
  auto control = listenAt(paths->control, SOCK_STREAM);
  if (!control) return control.error();
  controlListener_ = std::move(*control);
  controlPath_ = paths->control;
  if (auto watched = loop_.watch(portsListener_.get(), EPOLLIN, [this](uint32_t) { acceptPorts(); }); !watched)
    return watched;
  if (auto watched = loop_.watch(controlListener_.get(), EPOLLIN, [this](uint32_t) { acceptControl(); }); !watched)
    return watched;
  auto timer = LoopTimer::create(loop_, [this] {
    switch_.expireMacs();
    switch_.flows().expire(switch_.nowMs());
    scheduleAging();
  });
  if (!timer) return timer.error();
  agingTimer_ = std::move(*timer);
  scheduleAging();
  return {};
}

void SwitchService::scheduleAging() {
  if (auto armed = agingTimer_->arm(kAgingInterval); !armed) log::warn("switch {}: {}", name_, armed.error().message);
}

Result<PortId> SwitchService::addTap(std::string_view spec) {
  size_t comma = spec.find(',');
  std::string tapName(spec.substr(0, comma));
  auto vlans = PortVlans::parse(comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1));
  if (!vlans) return Error{fmt::format("--tap {}: {}", spec, vlans.error().message)};
  auto tap = TapDevice::open(tapName, loop_);
  if (!tap) return Error{fmt::format("--tap {}: {}", spec, tap.error().message)};
  std::string portName = (*tap)->name();
  auto id = switch_.addPort(portName, **tap, *vlans);
  if (!id) return id.error();
  attachments_[*id] = std::make_unique<Attachment>(Attachment{"tap", std::nullopt, std::move(*tap)});
  return *id;
}

Result<PortId> SwitchService::addVxlan(std::string_view spec) {
  size_t comma = spec.find(',');
  std::string portName(spec.substr(0, comma));
  std::string vlanText;
  auto config = parseVxlanConfig(comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1), vlanText);
  if (!config) return Error{fmt::format("--vxlan {}: {}", spec, config.error().message)};
  auto vlans = PortVlans::parse(vlanText);
  if (!vlans) return Error{fmt::format("--vxlan {}: {}", spec, vlans.error().message)};
  auto port = VxlanPort::open(*config, loop_);
  if (!port) return Error{fmt::format("--vxlan {}: {}", spec, port.error().message)};
  auto id = switch_.addPort(portName, **port, *vlans);
  if (!id) return Error{fmt::format("--vxlan {}: {}", spec, id.error().message)};
  attachments_[*id] = std::make_unique<Attachment>(Attachment{"vxlan", std::nullopt, std::move(*port)});
  return *id;
}

void SwitchService::announcePort(PortId id, bool added) {
  if (!openFlow_) return;
  if (auto port = switch_.port(id)) openFlow_->portChanged(added, *port);
}

Result<std::string> SwitchService::listenOpenFlow(std::string_view target) {
  auto server = OpenFlowServer::listen(target, switch_, name_, loop_);
  if (!server) return server.error();
  openFlow_ = std::move(*server);
  return openFlow_->address();
}

// ---------------------------------------------------------------- VM ports

void SwitchService::acceptPorts() {
  for (;;) {
    UniqueFd fd(::accept4(portsListener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;  // EAGAIN, or a transient error: the listener stays watched
    if (pendingAttach_.size() >= kMaxPendingAttach) {
      log::warn("switch {}: too many connections waiting to attach; refusing one", name_);
      continue;
    }
    int raw = fd.get();
    auto deadline = LoopTimer::create(loop_, [this, raw] {
      loop_.unwatch(raw);
      pendingAttach_.erase(raw);  // closes the connection and destroys this timer, which LoopTimer allows
    });
    if (!deadline || !(*deadline)->arm(std::chrono::milliseconds(kClientTimeoutMs))) continue;
    if (!loop_.watch(raw, EPOLLIN, [this, raw](uint32_t) { onAttachRequest(raw); })) continue;
    pendingAttach_.emplace(raw, std::make_unique<PendingAttach>(PendingAttach{std::move(fd), std::move(*deadline)}));
  }
}

void SwitchService::onAttachRequest(int raw) {
  auto it = pendingAttach_.find(raw);
  if (it == pendingAttach_.end()) return;
  char message[4096];
  ssize_t got = ::recv(raw, message, sizeof message, MSG_DONTWAIT);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;  // spurious wake-up: keep waiting
  loop_.unwatch(raw);
  UniqueFd fd = std::move(it->second->fd);
  pendingAttach_.erase(it);
  if (got <= 0) return;
  auto request = decodeAttachRequest(std::string_view(message, static_cast<size_t>(got)));
  auto reply = [raw](const std::string& text) { (void)::send(raw, text.data(), text.size(), MSG_NOSIGNAL); };
  if (!request) return reply("error " + request.error().message);
  std::string name = peerName(raw);
  for (int suffix = 2; switch_.portByName(name); ++suffix) name = fmt::format("{}-{}", peerName(raw), suffix);
  auto port = std::make_unique<SocketPort>(std::move(fd), loop_, name);  // keeps raw open while it lives
  auto id = switch_.addPort(name, *port, request->vlans);
  if (!id) return reply("error " + id.error().message);
  reply("ok " + name);
  announcePort(*id, true);
  SocketPort* socketPort = port.get();
  PortId portId = *id;
  socketPort->setClosedHandler(
      [this, portId, socketPort] { loop_.post([this, portId, socketPort] { detach(portId, socketPort); }); });
  attachments_[portId] = std::make_unique<Attachment>(Attachment{"vm", request->mac, std::move(port)});
  log::info("switch {}: port {} ({}) attached, {}", name_, portId, name, request->vlans.describe());
}

void SwitchService::detach(PortId id, const PacketPort* port) {
  auto it = attachments_.find(id);
  if (it == attachments_.end() || it->second->port.get() != port) return;
  log::info("switch {}: port {} detached", name_, id);
  announcePort(id, false);
  switch_.removePort(id);
  attachments_.erase(it);
}

// ---------------------------------------------------------------- control socket

void SwitchService::acceptControl() {
  for (;;) {
    UniqueFd fd(::accept4(controlListener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;
    if (controlClients_.size() >= kMaxControlClients) continue;
    int raw = fd.get();
    auto client = std::make_unique<ControlClient>();
    client->fd = std::move(fd);
    auto deadline = LoopTimer::create(loop_, [this, raw] { closeControl(raw); });
    if (!deadline || !(*deadline)->arm(std::chrono::milliseconds(kClientTimeoutMs))) continue;
    client->deadline = std::move(*deadline);
    if (!loop_.watch(raw, EPOLLIN, [this, raw](uint32_t events) { onControlEvent(raw, events); })) continue;
    controlClients_.emplace(raw, std::move(client));
  }
}

void SwitchService::closeControl(int fd) {
  auto it = controlClients_.find(fd);
  if (it == controlClients_.end()) return;
  loop_.unwatch(fd);
  // Destroying the client destroys its timer; when the timer itself fired, LoopTimer allows that.
  controlClients_.erase(it);
}

void SwitchService::onControlEvent(int fd, uint32_t events) {
  auto it = controlClients_.find(fd);
  if (it == controlClients_.end()) return;
  ControlClient& client = *it->second;
  if (!client.replied) {
    char chunk[4096];
    ssize_t got = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (got <= 0) return closeControl(fd);
    client.input.append(chunk, static_cast<size_t>(got));
    size_t newline = client.input.find('\n');
    if (newline == std::string::npos) {
      if (client.input.size() > kMaxRequestBytes) return closeControl(fd);
      return;
    }
    client.output = handleRequest(std::string_view(client.input).substr(0, newline));
    client.replied = true;
    if (!loop_.modify(fd, EPOLLOUT)) return closeControl(fd);
    events = EPOLLOUT;
  }
  if (!(events & EPOLLOUT)) return;
  while (client.written < client.output.size()) {
    ssize_t sent = ::send(fd, client.output.data() + client.written, client.output.size() - client.written,
                          MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0 && (errno == EAGAIN || errno == EINTR)) return;  // wait for EPOLLOUT again
    if (sent <= 0) return closeControl(fd);
    client.written += static_cast<size_t>(sent);
  }
  closeControl(fd);
}

std::optional<PortId> SwitchService::resolvePort(std::string_view text) const {
  if (auto byName = switch_.portByName(text)) return byName;
  PortId id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc{} || end != text.data() + text.size() || id == 0) return std::nullopt;
  return id;  // a number may name a port that attaches later
}

std::string SwitchService::handleRequest(std::string_view request) {
  size_t space = request.find(' ');
  std::string_view verb = request.substr(0, space);
  std::string_view argument = space == std::string_view::npos ? std::string_view{} : request.substr(space + 1);
  auto fail = [](const std::string& message) { return "error: " + message + "\n"; };
  if (verb == "flow-add") {
    auto rule = parseFlowRule(argument, [this](std::string_view text) { return resolvePort(text); });
    if (!rule) return fail(rule.error().message);
    rule->createdMs = switch_.nowMs();
    auto id = switch_.flows().add(std::move(*rule));
    if (!id) return fail(id.error().message);
    return fmt::format("ok\n{}\n", *id);
  }
  if (verb == "flow-del") {
    if (argument == "all") {
      switch_.flows().clear();
      return "ok\n";
    }
    uint64_t id = 0;
    auto [end, error] = std::from_chars(argument.data(), argument.data() + argument.size(), id);
    if (error != std::errc{} || end != argument.data() + argument.size())
      return fail(fmt::format("flow-del: '{}' is not a flow id (or 'all')", argument));
    if (!switch_.flows().remove(id)) return fail(fmt::format("no flow {}", id));
    return "ok\n";
  }
  if (verb == "flow-list" && (argument.empty() || argument == "json")) return "ok\n" + listFlows(argument == "json");
  if (verb == "port-list" && (argument.empty() || argument == "json")) return "ok\n" + listPorts(argument == "json");
  if (verb == "mirror") {
    size_t split = argument.find(' ');
    auto source = resolvePort(argument.substr(0, split));
    std::string_view target = split == std::string_view::npos ? std::string_view{} : argument.substr(split + 1);
    if (!source) return fail("mirror: no such source port");
    std::optional<PortId> destination;
    if (target != "off") {
      destination = resolvePort(target);
      if (!destination) return fail("mirror: no such destination port (or 'off')");
    }
    if (auto set = switch_.setMirror(*source, destination); !set) return fail(set.error().message);
    return "ok\n";
  }
  return fail(fmt::format("unknown request '{}'", request.substr(0, 64)));
}

std::string SwitchService::listFlows(bool json) const {
  std::string out = json ? "{\"flows\":[" : "";
  bool first = true;
  for (const auto& rule : switch_.flows().rules()) {
    std::string match = formatFlowMatch(rule.match), actions = formatFlowActions(rule.actions);
    if (json) {
      out += fmt::format("{}{{\"id\":{},\"priority\":{},\"match\":{},\"actions\":{},\"packets\":{},\"bytes\":{}}}",
                         first ? "" : ",", rule.id, rule.priority, jsonString(match), jsonString(actions),
                         rule.packets, rule.bytes);
    } else {
      out += fmt::format("id={} priority={} packets={} bytes={} {}{}actions={}\n", rule.id, rule.priority,
                         rule.packets, rule.bytes, match, match.empty() ? "" : " ", actions);
    }
    first = false;
  }
  return json ? out + "]}\n" : out;
}

std::string SwitchService::listPorts(bool json) const {
  std::string out = json ? "{\"ports\":[" : "ID  NAME             KIND  VLANS                MAC                RX_PKTS    RX_BYTES  TX_PKTS    TX_BYTES  RX_DROP\n";
  bool first = true;
  for (const auto& port : switch_.ports()) {
    auto it = attachments_.find(port.id);
    std::string kind = it != attachments_.end() ? it->second->kind : "?";
    std::string mac = it != attachments_.end() && it->second->mac ? formatMac(*it->second->mac) : "-";
    const auto& c = port.counters;
    if (json) {
      out += fmt::format(
          "{}{{\"id\":{},\"name\":{},\"kind\":{},\"vlans\":{},\"mac\":{},\"rx_packets\":{},\"rx_bytes\":{},"
          "\"tx_packets\":{},\"tx_bytes\":{},\"rx_dropped\":{},\"mirror_to\":{}}}",
          first ? "" : ",", port.id, jsonString(port.name), jsonString(kind), jsonString(port.vlans.describe()),
          jsonString(mac), c.rxPackets, c.rxBytes, c.txPackets, c.txBytes, c.rxDropped,
          port.mirrorTo ? fmt::format("{}", *port.mirrorTo) : "null");
    } else {
      out += fmt::format("{:<3} {:<16} {:<5} {:<20} {:<17} {:>8} {:>11} {:>8} {:>11} {:>8}\n", port.id, port.name,
                         kind, port.vlans.describe(), mac, c.rxPackets, c.rxBytes, c.txPackets, c.txBytes,
                         c.rxDropped);
    }
    first = false;
  }
  const DropCounters& d = switch_.drops();
  size_t controllers = openFlow_ ? openFlow_->connections() : 0;
  uint64_t packetInsDropped = openFlow_ ? openFlow_->droppedPacketIns() : 0;
  if (json) {
    return out + fmt::format(
                     "],\"drops\":{{\"runt\":{},\"oversize\":{},\"bad_vlan_tag\":{},\"bad_source_mac\":{},"
                     "\"vlan_not_allowed\":{},\"by_rule\":{},\"learning_full\":{}}},\"mac_entries\":{},"
                     "\"openflow_connections\":{},\"packet_in_dropped\":{}}}\n",
                     d.runt, d.oversize, d.badVlanTag, d.badSourceMac, d.vlanNotAllowed, d.byRule, d.learningFull,
                     switch_.macTable().size(), controllers, packetInsDropped);
  }
  return out + fmt::format("drops: runt={} oversize={} bad_vlan_tag={} bad_source_mac={} vlan_not_allowed={} "
                           "by_rule={} (not learned, table full: {}); MAC entries: {}; OpenFlow connections: {}, "
                           "PACKET_INs dropped (controller behind): {}\n",
                           d.runt, d.oversize, d.badVlanTag, d.badSourceMac, d.vlanNotAllowed, d.byRule,
                           d.learningFull, switch_.macTable().size(), controllers, packetInsDropped);
}

Result<std::string> sendSwitchRequest(std::string_view switchName, std::string_view request) {
  auto paths = switchPaths(switchName);
  if (!paths) return paths.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  auto address = unixAddress(paths->control);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("switch {}: connect to {} (is `strata switch {}` running?)", switchName,
                                  paths->control, switchName));
  std::string line = std::string(request) + "\n";
  for (size_t sent = 0; sent < line.size();) {
    ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errnoError(fmt::format("switch {}: send", switchName));
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char chunk[65536];
  for (;;) {
    pollfd ready{fd.get(), POLLIN, 0};
    int polled = ::poll(&ready, 1, kClientTimeoutMs);
    if (polled < 0 && errno == EINTR) continue;
    if (polled <= 0) return Error{fmt::format("switch {}: no reply", switchName)};
    ssize_t got = ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errnoError(fmt::format("switch {}: receive", switchName));
    if (got == 0) break;
    reply.append(chunk, static_cast<size_t>(got));
  }
  if (reply.rfind("ok\n", 0) == 0) return reply.substr(3);
  if (reply.rfind("error: ", 0) == 0) {
    std::string message = reply.substr(7);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Error{message};
  }
  return Error{fmt::format("switch {}: malformed reply", switchName)};
}

}  // namespace strata::network
