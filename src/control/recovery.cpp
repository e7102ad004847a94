#include "control/recovery.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include <fmt/core.h>

#include "base/log.h"
#include "base/unique_fd.h"
#include "control/supervisor.h"

namespace strata::control {
namespace {

constexpr int kKillWaitMs = 10000;

// The VM a process serves: NAME when its command line holds
// `--api-socket VMS/NAME/api.sock` (how the supervisor starts every VM).
std::optional<std::string> vmServedBy(const std::string& pid, const std::string& vmsDir) {
  // read(2), not a stream: reading a process that has just ended fails with ESRCH, which libstdc++ throws.
  std::string cmdline;
  UniqueFd file(::open(("/proc/" + pid + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC));
  char buffer[4096];
  for (ssize_t n; file.valid() && (n = ::read(file.get(), buffer, sizeof buffer)) > 0;)
    cmdline.append(buffer, static_cast<size_t>(n));
  const std::string option = std::string("--api-socket") + '\0', prefix = vmsDir + "/", suffix = "/api.sock";
  size_t at = cmdline.find(option);
  if (at == std::string::npos || (at > 0 && cmdline[at - 1] != '\0')) return std::nullopt;
  std::string socket = cmdline.substr(at + option.size());
  socket = socket.substr(0, socket.find('\0'));
  if (socket.rfind(prefix, 0) != 0 || socket.size() <= prefix.size() + suffix.size() ||
      socket.compare(socket.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  std::string name = socket.substr(prefix.size(), socket.size() - prefix.size() - suffix.size());
  if (!isValidName(name)) return std::nullopt;
  return name;
}

// Each VM process of this data directory the store does not record as
// running: killed through a pidfd (so a reused pid is never hit), and waited for.
void killUnrecordedVms(Store& store, const std::string& vmsDir) {
  std::set<pid_t> recorded;
  for (const auto& vm : store.vms())
    if (vm.state != VmState::Stopped && vm.pid > 0) recorded.insert(vm.pid);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos || recorded.count(std::stoi(pid))) continue;
    auto name = vmServedBy(pid, vmsDir);
    if (!name) continue;
    UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, std::stoi(pid), 0)));
    // Held by the pidfd from here: checked again, it is still that VM's process (and not a zombie).
    if (!process.valid() || vmServedBy(pid, vmsDir) != name || !processStartTime(std::stoi(pid))) continue;
    log::warn("{}: killing its process {}, which no record owns (a daemon was killed while starting it)", *name, pid);
    if (::syscall(SYS_pidfd_send_signal, process.get(), SIGKILL, nullptr, 0) != 0) continue;
    pollfd ended{process.get(), POLLIN, 0};
    if (::poll(&ended, 1, kKillWaitMs) != 1) log::error("{}: process {} did not end after SIGKILL", *name, pid);
  }
}

// What a killed daemon's request left: pending definitions, VM directories
// and template images without a record. Only what the daemon itself names
// (a valid VM name; NAME.qcow2) is touched.
void removeUnownedFiles(Store& store, const std::string& dataDir) {
  for (const auto& name : store.dropPendingVms()) log::info("{}: dropping a definition a killed daemon left half done", name);
  std::set<std::string> vms, images;
  for (const auto& vm : store.vms()) vms.insert(vm.spec.name);
  for (const auto& record : store.templates(std::nullopt)) images.insert(record.path);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dataDir + "/vms", error)) {
    std::string name = entry.path().filename();
    if (!entry.is_directory() || !isValidName(name) || vms.count(name)) continue;
    log::info("{}: removing its directory, which no VM owns", entry.path().string());
    std::filesystem::remove_all(entry.path(), error);
  }
  for (const auto& entry : std::filesystem::directory_iterator(dataDir + "/templates", error)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".qcow2" || images.count(entry.path().string()))
      continue;
    log::info("{}: removing this template image, which no template owns", entry.path().string());
    std::filesystem::remove(entry.path(), error);
  }
}

}  // namespace

void recoverInterruptedWork(Store& store, const std::string& dataDir) {
  killUnrecordedVms(store, dataDir + "/vms");
  removeUnownedFiles(store, dataDir);
  store.failRunningOperations("interrupted: the daemon stopped while it ran");
}

}  // namespace strata::control
