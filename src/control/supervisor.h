// Supervisor: runs each VM as its own `strata run --api-socket` child in a new
// session (so VMs outlive the daemon and a crashing VM only ends itself),
// drives it only through that socket, reaps children, notices VMs that end,
// adopts the VMs a previous daemon left running, and meters what they use.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "control/http_client.h"
#include "control/store.h"

namespace strata::control {

// /proc/PID/stat field 22 (start time in clock ticks since boot), or nullopt when
// the process is gone or a zombie: with the pid, it identifies one process.
std::optional<uint64_t> processStartTime(pid_t pid);

// What a VM's process uses now, from /proc: the dashboard's CPU and memory graphs.
struct ProcessUsage {
  double cpuSeconds = 0;  // user + system time since the VM started
  uint64_t residentBytes = 0;
};

// Starts `args` (args[0] the binary) in a new session with stdin /dev/null and
// stdout/stderr appended to logPath; the VMs and the template snapshot's boot use it.
Result<pid_t> spawnDetached(std::vector<std::string> args, const std::string& logPath);

struct VmPaths {
  std::string dir, apiSocket, console, consoleSocket, log;
  std::string clonedDisk;  // a VM made from a template: its qcow2 overlay
};

class Supervisor {
 public:
  struct Options {
    std::string dataDir, strataBinary;
    std::chrono::seconds meterInterval{30};
  };
  Supervisor(Store& store, Options options);
  ~Supervisor();  // stops watching; the VMs keep running
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  VmPaths pathsOf(const std::string& name) const;
  const std::string& strataBinary() const { return options_.strataBinary; }
  // Keeps each VM recorded as running whose process still lives (same start
  // time) and whose API socket answers (within a few seconds); records the others as stopped.
  void adoptRunningVms();
  void startWatching();

  // Spawns a VM the store has claimed (state Starting) and waits until its API
  // socket answers; on failure the VM is recorded stopped and the error quotes its log.
  Result<void> start(const std::string& name);
  // Asks the VM to shut down, and kills it if it has not ended after `grace`.
  Result<void> shutdown(const std::string& name, std::chrono::milliseconds grace);
  Result<void> destroy(const std::string& name);  // SIGKILL
  // PUT /vm/state {"action": ...} on the VM's socket: pause, resume, reset.
  Result<HttpReply> changeState(const std::string& name, const std::string& action);
  // Of a live VM's own process (same start time), or nullopt.
  std::optional<ProcessUsage> usageOf(const VmRecord& vm) const;
  Result<HttpReply> vmRequest(const VmRecord& vm, const std::string& method, const std::string& path,
                              const std::string& body = "");

 private:
  void watch();
  void reapChildren();
  void noticeEndedVms();
  void meter();
  // A record from the VM's mark to now, if it runs and its counters can be read.
  void meterVm(const std::string& name);
  std::optional<MeteredCounters> countersOf(const VmRecord& vm);
  uint64_t allocatedDiskBytes(const VmSpec& spec);
  bool waitUntilStopped(const std::string& name, std::chrono::milliseconds limit);
  bool signalVm(const VmRecord& vm, int signal);

  Store& store_;
  Options options_;
  std::mutex spawnMutex_;  // spawning a child and recording its pid vs reaping
  std::chrono::steady_clock::time_point lastMeter_;
  std::mutex meterMutex_;
  std::mutex watchMutex_;
  std::condition_variable watchWake_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace strata::control
