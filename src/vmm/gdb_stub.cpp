#include "vmm/gdb_stub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include <fmt/core.h>

#include "base/log.h"
#include "vmm/gdb_registers.h"
#include "vmm/sandbox.h"

namespace strata::vmm {
namespace {

constexpr int kSigint = 2, kSigtrap = 5;

// "a,b" or "a,b:rest" hex fields.
bool splitAddressLength(std::string_view args, uint64_t& address, uint64_t& length, std::string_view* rest = nullptr) {
  const size_t comma = args.find(',');
  if (comma == std::string_view::npos) return false;
  size_t end = args.size();
  if (rest != nullptr) {
    end = args.find(':', comma);
    if (end == std::string_view::npos) return false;
    *rest = args.substr(end + 1);
  }
  auto a = parseHexNumber(args.substr(0, comma));
  auto l = parseHexNumber(args.substr(comma + 1, end - comma - 1));
  if (!a || !l) return false;
  address = *a;
  length = *l;
  return true;
}

const char* watchKind(const cpu::DebugWatchpoint& watch) {
  if (watch.onRead && watch.onWrite) return "awatch";
  return watch.onRead ? "rwatch" : "watch";
}

}  // namespace

Result<GdbEndpoint> parseGdbEndpoint(const std::string& text) {
  const std::string usage = fmt::format("--gdb {}: expected tcp:HOST:PORT with an IPv4 HOST", text);
  if (text.rfind("tcp:", 0) != 0) return Error{usage};
  const size_t colon = text.rfind(':');
  if (colon <= 4) return Error{usage};
  GdbEndpoint endpoint{text.substr(4, colon - 4), 0};
  in_addr address{};
  if (::inet_pton(AF_INET, endpoint.host.c_str(), &address) != 1) return Error{usage};
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [end, error] = std::from_chars(first, last, endpoint.port);
  if (error != std::errc{} || end != last || first == last) return Error{usage};
  return endpoint;
}

Result<std::unique_ptr<GdbStub>> GdbStub::create(const VmConfig& config, VmControl& control) {
  auto endpoint = parseGdbEndpoint(config.gdb);
  if (!endpoint) return endpoint.error();
  UniqueFd listenFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listenFd.valid()) return errnoError("gdb: socket");
  int on = 1;
  ::setsockopt(listenFd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(endpoint->port);
  ::inet_pton(AF_INET, endpoint->host.c_str(), &address.sin_addr);
  if (::bind(listenFd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("gdb: bind {}", config.gdb));
  if (::listen(listenFd.get(), 1) != 0) return errnoError("gdb: listen");
  socklen_t length = sizeof address;
  ::getsockname(listenFd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  UniqueFd wakeFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeFd.valid()) return errnoError("gdb: eventfd");
  std::unique_ptr<GdbStub> stub(
      new GdbStub(config, control, std::move(listenFd), std::move(wakeFd), ntohs(address.sin_port)));
  // Always printed: with port 0 it is the only way to learn the port.
  std::fprintf(stderr, "strata run: gdb stub listening on tcp:%s:%u\n", endpoint->host.c_str(), stub->port());
  return stub;
}

GdbStub::GdbStub(const VmConfig& config, VmControl& control, UniqueFd listenFd, UniqueFd wakeFd, uint16_t port)
    : config_(config), control_(control), listenFd_(std::move(listenFd)), wakeFd_(std::move(wakeFd)), port_(port) {
  control_.setDebugStopHandler([this](unsigned hart) { hartStopped(hart); });
}

GdbStub::~GdbStub() {
  control_.setDebugStopHandler(nullptr);
  shutdown_ = true;
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wakeFd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void GdbStub::start() {
  thread_ = std::thread([this] {
    if (auto entered = enterThreadRole(ThreadRole::Gdb, config_); !entered) {
      log::error("gdb: sandbox: {}", entered.error().message);
      return;
    }
    serve();
  });
}

void GdbStub::hartStopped(unsigned hart) {
  {
    std::lock_guard lock(stoppedMutex_);
    stoppedHarts_.push_back(hart);
  }
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wakeFd_.get(), &one, sizeof one);
}

std::vector<unsigned> GdbStub::takeStoppedHarts() {
  std::lock_guard lock(stoppedMutex_);
  return std::exchange(stoppedHarts_, {});
}

void GdbStub::drainWake() {
  uint64_t count;
  [[maybe_unused]] auto got = ::read(wakeFd_.get(), &count, sizeof count);
}

void GdbStub::serve() {
  while (!shutdown_) {
    pollfd fds[2] = {{listenFd_.get(), POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents & POLLIN) {
      drainWake();
      // A hart that reached a point of a session now over waits for a pause: give it one.
      if (!shutdown_ && !takeStoppedHarts().empty() && pauseVm()) control_.resume();
    }
    if (shutdown_ || !(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serveClient(fd);
    ::close(fd);
  }
}

void GdbStub::serveClient(int fd) {
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  timeval timeout{5, 0};  // a client that stops reading is dropped, not waited for
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  log::info("gdb: debugger connected");
  client_ = fd;
  clientGone_ = false;
  reader_ = GdbPacketReader{};
  lastReply_.clear();
  running_ = false;
  generalHart_ = continueHart_ = 0;
  lastStop_ = fmt::format("T{:02x}thread:01;", kSigtrap);
  takeStoppedHarts();  // stops of an earlier session are answered by the pause below
  if (!pauseVm()) return endSession();
  char buffer[4096];
  std::vector<GdbEvent> events;
  while (!clientGone_ && !shutdown_) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wakeFd_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents & POLLIN) {
      drainWake();
      std::vector<unsigned> stopped = takeStoppedHarts();
      // Stopped already: a hart that hit a point meanwhile parked in this pause and hits it again on resume.
      if (running_ && !stopped.empty()) {
        if (!pauseVm()) break;
        reportStop(stopped.front(), kSigtrap);
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got <= 0) break;
    events.clear();
    reader_.feed(std::string_view(buffer, static_cast<size_t>(got)), events);
    for (const GdbEvent& event : events) {
      if (clientGone_) break;
      handleEvent(event);
    }
  }
  endSession();
}

void GdbStub::endSession() {
  // The VM runs on without the debugger's points, whichever way the session ended.
  if (pauseVm()) {
    control_.setDebugPoints({});
    control_.resume();
  }
  points_ = {};
  running_ = false;
  client_ = -1;
  log::info("gdb: debugger detached");
}

void GdbStub::handleEvent(const GdbEvent& event) {
  switch (event.kind) {
    case GdbEvent::Kind::Ack: return;
    case GdbEvent::Kind::Nack:
      if (!lastReply_.empty()) send(lastReply_);
      return;
    case GdbEvent::Kind::BadPacket: send("-"); return;
    case GdbEvent::Kind::Interrupt:
      if (running_ && pauseVm()) reportStop(continueHart_, kSigint);
      return;
    case GdbEvent::Kind::Packet: {
      send("+");
      auto answer = handlePacket(event.payload);
      if (answer) reply(*answer);
      return;
    }
  }
}

void GdbStub::send(std::string_view framed) {
  size_t sent = 0;
  while (sent < framed.size() && !clientGone_) {
    const ssize_t n = ::send(client_, framed.data() + sent, framed.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) clientGone_ = true;
    else sent += static_cast<size_t>(n);
  }
}

void GdbStub::reply(std::string_view payload) {
  lastReply_ = framePacket(payload);
  send(lastReply_);
}

bool GdbStub::pauseVm() {
  if (control_.pause() == VmState::Paused) return true;
  clientGone_ = true;  // the VM is ending: nothing left to debug
  return false;
}

void GdbStub::resumeVm() {
  control_.setDebugPoints(points_);  // applied to every hart while still paused
  running_ = true;
  control_.resume();
}

void GdbStub::reportStop(unsigned hart, int signal) {
  running_ = false;
  generalHart_ = continueHart_ = hart;
  std::string watch;
  if (signal == kSigtrap) {
    cpu::DebugStop stop;
    control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
      if (hart < harts.size()) stop = harts[hart]->lastDebugStop();
    });
    if (stop.kind == cpu::DebugStop::Kind::Watchpoint) {
      for (const auto& point : points_.watchpoints)
        if (stop.address >= point.address && stop.address < point.address + point.length)
          watch = fmt::format("{}:{:x};", watchKind(point), stop.address);
    }
  }
  lastStop_ = fmt::format("T{:02x}{}thread:{:x};", signal, watch, hart + 1);
  reply(lastStop_);
}

std::optional<std::string> GdbStub::step(unsigned hart) {
  control_.stepHart(hart);  // a hart that is not running stays where it is, and says so by its pc
  reportStop(hart, kSigtrap);
  return std::nullopt;
}

std::optional<unsigned> GdbStub::threadHart(std::string_view id) const {
  if (id == "-1" || id == "0") return std::nullopt;
  auto number = parseHexNumber(id);
  if (!number || *number == 0 || *number > config_.cpus) return config_.cpus;  // out of range: caller refuses
  return static_cast<unsigned>(*number - 1);
}

bool GdbStub::selectThread(std::string_view args) {
  if (args.empty()) return false;
  auto hart = threadHart(args.substr(1));
  if (hart && *hart >= config_.cpus) return false;
  if (args[0] == 'g') generalHart_ = hart.value_or(generalHart_);
  else if (args[0] == 'c') continueHart_ = hart.value_or(continueHart_);
  else return false;
  return true;
}

std::optional<std::string> GdbStub::handlePacket(std::string_view packet) {
  if (packet.empty()) return "";
  const char command = packet[0];
  const std::string_view args = packet.substr(1);
  switch (command) {
    case '?': return lastStop_;
    case 'g': return readRegisters();
    case 'G': return writeRegisters(args);
    case 'p': {
      auto number = parseHexNumber(args);
      std::optional<std::string> value;
      if (number && *number < (1u << 16))
        control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
          value = readGdbRegister(*harts[generalHart_], static_cast<unsigned>(*number));
        });
      return value.value_or("E45");
    }
    case 'P': {
      const size_t equals = args.find('=');
      auto number = parseHexNumber(args.substr(0, equals));
      bool written = false;
      if (equals != std::string_view::npos && number && *number < (1u << 16))
        control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
          written = writeGdbRegister(*harts[generalHart_], static_cast<unsigned>(*number), args.substr(equals + 1));
        });
      return written ? "OK" : "E45";
    }
    case 'm': return readMemory(args);
    case 'M': return writeMemory(args);
    case 'Z': return changePoint(true, args);
    case 'z': return changePoint(false, args);
    case 'H': return selectThread(args) ? "OK" : "E22";
    case 'T': {
      auto hart = threadHart(args);
      return hart && *hart < config_.cpus ? "OK" : "E22";
    }
    case 'c':
    case 's': {
      if (!args.empty()) {
        auto pc = parseHexNumber(args);
        if (!pc) return "E22";
        control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) { harts[continueHart_]->setPc(*pc); });
      }
      if (command == 's') return step(continueHart_);
      resumeVm();
      return std::nullopt;
    }
    case 'D':
      reply("OK");
      clientGone_ = true;  // serveClient ends the session
      return std::nullopt;
    case 'k':
      control_.shutdown();
      clientGone_ = true;
      return std::nullopt;
    case 'v':
      if (packet == "vCont?") return "vCont;c;C;s;S";
      if (packet.rfind("vCont;", 0) == 0) return resumeActions(packet.substr(6));
      if (packet.rfind("vKill", 0) == 0) {
        reply("OK");
        control_.shutdown();
        clientGone_ = true;
        return std::nullopt;
      }
      return "";
    case 'q':
      if (packet.rfind("qSupported", 0) == 0)
        return fmt::format("PacketSize={:x};qXfer:features:read+;vContSupported+", GdbPacketReader::kMaxPayload);
      if (packet.rfind("qXfer:features:read:", 0) == 0) return readFeatures(packet.substr(20));
      if (packet == "qAttached") return "1";
      if (packet == "qC") return fmt::format("QC{:x}", continueHart_ + 1);
      if (packet == "qfThreadInfo") {
        std::string list = "m";
        for (unsigned hart = 0; hart < config_.cpus; ++hart) list += fmt::format("{}{:x}", hart ? "," : "", hart + 1);
        return list;
      }
      if (packet == "qsThreadInfo") return "l";
      if (packet.rfind("qThreadExtraInfo,", 0) == 0) {
        auto hart = threadHart(packet.substr(17));
        if (!hart || *hart >= config_.cpus) return "E22";
        return toHex(fmt::format("hart {}", *hart));
      }
      if (packet == "qSymbol::") return "OK";
      return "";
    default: return "";
  }
}

// "s:TID", "c", "C05:TID", ... separated by ';'. The VM is all-stop: a step
// action steps that one hart with the others held; otherwise everything runs.
std::optional<std::string> GdbStub::resumeActions(std::string_view actions) {
  bool resume = false;
  while (!actions.empty()) {
    const size_t semicolon = std::min(actions.find(';'), actions.size());
    const std::string_view action = actions.substr(0, semicolon);
    actions = actions.substr(std::min(semicolon + 1, actions.size()));
    if (action.empty()) return "E22";
    const size_t colon = action.find(':');
    std::optional<unsigned> hart;
    if (colon != std::string_view::npos) {
      hart = threadHart(action.substr(colon + 1));
      if (hart && *hart >= config_.cpus) return "E22";
    }
    if (action[0] == 's' || action[0] == 'S') return step(hart.value_or(continueHart_));
    if (action[0] != 'c' && action[0] != 'C') return "E22";
    resume = true;
  }
  if (!resume) return "E22";
  resumeVm();
  return std::nullopt;
}

std::string GdbStub::readRegisters() {
  std::string hex;
  control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
    for (unsigned number = 0; number < kGdbGeneralRegisters; ++number)
      hex += *readGdbRegister(*harts[generalHart_], number);
  });
  return hex.empty() ? "E01" : hex;
}

std::string GdbStub::writeRegisters(std::string_view hex) {
  if (hex.size() < kGdbGeneralRegisters * 16) return "E22";
  bool written = control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
    for (unsigned number = 0; number < kGdbGeneralRegisters; ++number)
      writeGdbRegister(*harts[generalHart_], number, hex.substr(number * 16, 16));
  });
  return written ? "OK" : "E01";
}

std::string GdbStub::readMemory(std::string_view args) {
  uint64_t address, length;
  if (!splitAddressLength(args, address, length)) return "E22";
  length = std::min<uint64_t>(length, kMaxMemoryRead);
  std::vector<uint8_t> bytes(length);
  bool read = false;
  control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
    read = harts[generalHart_]->debugReadMemory(address, bytes.data(), bytes.size());
  });
  return read ? toHex(bytes.data(), bytes.size()) : "E14";
}

std::string GdbStub::writeMemory(std::string_view args) {
  uint64_t address, length;
  std::string_view data;
  if (!splitAddressLength(args, address, length, &data)) return "E22";
  if (length == 0) return "OK";
  auto bytes = fromHex(data);
  if (!bytes || bytes->size() != length) return "E22";
  bool written = false;
  control_.withPausedHarts([&](const std::vector<cpu::Hart*>& harts) {
    written = harts[generalHart_]->debugWriteMemory(address, bytes->data(), bytes->size());
    // The bytes may be code some hart has decoded or translated.
    for (cpu::Hart* hart : harts) hart->requestRemoteFence(cpu::RemoteFence::InstructionCache);
  });
  return written ? "OK" : "E14";
}

// "TYPE,ADDR,KIND": 0/1 breakpoints (both the harts' own: memory is never
// patched), 2 write, 3 read and 4 access watchpoints of KIND bytes.
std::string GdbStub::changePoint(bool insert, std::string_view args) {
  if (args.size() < 2 || args[1] != ',' || args[0] < '0' || args[0] > '4') return "";
  const int type = args[0] - '0';
  uint64_t address, kind;
  if (!splitAddressLength(args.substr(2), address, kind)) return "E22";
  if (type <= 1) {
    auto& list = points_.breakpoints;
    auto found = std::find(list.begin(), list.end(), address);
    if (insert && found == list.end()) {
      if (list.size() >= kMaxBreakpoints) return "E28";
      list.push_back(address);
    } else if (!insert && found != list.end()) {
      list.erase(found);
    }
    return "OK";
  }
  if (kind == 0 || kind > 4096) return "E22";
  const cpu::DebugWatchpoint watch{address, kind, type != 2, type != 3};
  auto& list = points_.watchpoints;
  auto found = std::find(list.begin(), list.end(), watch);
  if (insert && found == list.end()) {
    if (list.size() >= kMaxWatchpoints) return "E28";
    list.push_back(watch);
  } else if (!insert && found != list.end()) {
    list.erase(found);
  }
  return "OK";
}

// "target.xml:OFFSET,LENGTH"
std::string GdbStub::readFeatures(std::string_view args) {
  constexpr std::string_view kAnnex = "target.xml:";
  if (args.substr(0, kAnnex.size()) != kAnnex) return "E00";
  uint64_t offset, length;
  if (!splitAddressLength(args.substr(kAnnex.size()), offset, length)) return "E22";
  const std::string& xml = gdbTargetXml();
  if (offset >= xml.size()) return "l";
  length = std::min<uint64_t>(length, GdbPacketReader::kMaxPayload / 2);
  const std::string_view part = std::string_view(xml).substr(offset, length);
  return (offset + part.size() >= xml.size() ? "l" : "m") + std::string(part);
}

}  // namespace strata::vmm
