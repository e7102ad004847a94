// GdbStub: `strata run --gdb tcp:HOST:PORT`, a GDB remote serial protocol
// server that gdb-multiarch attaches to. All-stop: a stop (breakpoint,
// watchpoint, step, Ctrl-C) pauses the whole VM through VmControl, and every
// hart is a thread. Breakpoints and watchpoints are the harts' own
// (Hart::setDebugPoints), so guest memory is never patched. One client at a
// time on a thread of its own (sandbox role Gdb); a client that misbehaves or
// goes away is dropped and the VM runs on without its points.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "cpu/hart.h"
#include "vmm/gdb_packet.h"
#include "vmm/vm_config.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

// "tcp:HOST:PORT" with an IPv4 HOST; port 0 lets the kernel pick one.
struct GdbEndpoint {
  std::string host;
  uint16_t port = 0;
};
Result<GdbEndpoint> parseGdbEndpoint(const std::string& text);

class GdbStub {
 public:
  static constexpr size_t kMaxBreakpoints = 256;
  static constexpr size_t kMaxWatchpoints = 16;
  static constexpr size_t kMaxMemoryRead = 0x1000;  // bytes per 'm' reply

  // Binds and listens (before the sandbox goes up) and hooks into control's debug stops.
  static Result<std::unique_ptr<GdbStub>> create(const VmConfig& config, VmControl& control);
  ~GdbStub();  // stops serving; the VM runs on without the debugger's points

  uint16_t port() const { return port_; }
  void start();  // serves on a thread of its own

 private:
  GdbStub(const VmConfig& config, VmControl& control, UniqueFd listenFd, UniqueFd wakeFd, uint16_t port);
  void serve();
  void serveClient(int fd);
  // vCPU threads (through VmControl::debugStopped): a hart stopped at a debug point.
  void hartStopped(unsigned hart);
  std::vector<unsigned> takeStoppedHarts();
  void drainWake();

  // ---- one client's session (stub thread)
  void handleEvent(const GdbEvent& event);
  std::optional<std::string> handlePacket(std::string_view packet);
  void send(std::string_view framed);
  void reply(std::string_view payload);
  bool pauseVm();  // false: the VM is ending
  void reportStop(unsigned hart, int signal);
  void resumeVm();
  std::optional<std::string> step(unsigned hart);
  std::string readRegisters();
  std::string writeRegisters(std::string_view hex);
  std::string readMemory(std::string_view args);
  std::string writeMemory(std::string_view args);
  std::string changePoint(bool insert, std::string_view args);
  std::string readFeatures(std::string_view args);
  std::optional<std::string> resumeActions(std::string_view actions);
  bool selectThread(std::string_view args);
  std::optional<unsigned> threadHart(std::string_view id) const;
  void endSession();

  const VmConfig& config_;
  VmControl& control_;
  UniqueFd listenFd_;
  UniqueFd wakeFd_;  // eventfd: a hart stopped, or the stub is shutting down
  uint16_t port_;
  std::atomic<bool> shutdown_{false};
  std::thread thread_;
  std::mutex stoppedMutex_;
  std::vector<unsigned> stoppedHarts_;

  int client_ = -1;
  bool clientGone_ = false;
  GdbPacketReader reader_;
  std::string lastReply_;  // framed, resent on a '-'
  bool running_ = false;   // the client resumed the VM and waits for a stop
  unsigned generalHart_ = 0;   // Hg: registers and memory
  unsigned continueHart_ = 0;  // Hc, and the last hart that stopped: steps
  std::string lastStop_;
  cpu::DebugPoints points_;
};

}  // namespace strata::vmm
