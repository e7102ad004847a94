#include "control/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/log.h"

namespace strata::control {
namespace {

constexpr auto kWatchPeriod = std::chrono::milliseconds(200);
constexpr auto kSocketWait = std::chrono::seconds(20);
constexpr auto kKillWait = std::chrono::seconds(10);
constexpr auto kAdoptWait = std::chrono::seconds(5);

// Fields 3.. of /proc/PID/stat (after the parenthesized command name, which may hold spaces).
std::optional<std::vector<std::string>> statFields(pid_t pid) {
  std::ifstream file(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!std::getline(file, text)) return std::nullopt;
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string field; rest >> field;) fields.push_back(field);
  if (fields.size() < 20) return std::nullopt;
  return fields;
}

std::optional<uint64_t> cpuTicks(pid_t pid) {
  auto fields = statFields(pid);
  if (!fields) return std::nullopt;
  return std::stoull((*fields)[14 - 3]) + std::stoull((*fields)[15 - 3]);  // utime + stime
}

std::string tailOf(const std::string& path, size_t bytes) {
  std::ifstream file(path);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

int exitCodeOf(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

bool isLive(const VmRecord& vm) { return vm.state != VmState::Stopped && vm.pid > 0; }

// Field 22 of /proc/PID/stat; `ended` accepts a zombie (an ended child not yet reaped).
std::optional<uint64_t> startTimeOf(pid_t pid, bool ended) {
  auto fields = statFields(pid);
  if (!fields || (!ended && ((*fields)[0] == "Z" || (*fields)[0] == "X"))) return std::nullopt;
  return std::stoull((*fields)[22 - 3]);
}

}  // namespace

std::optional<uint64_t> processStartTime(pid_t pid) { return startTimeOf(pid, false); }

// A new session: the child gets no signal meant for the daemon's terminal or
// process group, and outlives the daemon. Default signal handling, no
// inherited descriptors beyond its stdio (the log).
Result<pid_t> spawnDetached(std::vector<std::string> args, const std::string& logPath) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) return errnoError(args[0], rc);
  return pid;
}

Supervisor::Supervisor(Store& store, Options options) : store_(store), options_(std::move(options)) {}

Supervisor::~Supervisor() {
  {
    std::lock_guard lock(watchMutex_);
    stopping_ = true;
  }
  watchWake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

VmPaths Supervisor::pathsOf(const std::string& name) const {
  std::string dir = options_.dataDir + "/vms/" + name;
  return {dir, dir + "/api.sock", dir + "/console.log", dir + "/tty.sock", dir + "/strata.log", dir + "/disk.qcow2"};
}

Result<HttpReply> Supervisor::vmRequest(const VmRecord& vm, const std::string& method, const std::string& path,
                                        const std::string& body) {
  if (!isLive(vm)) return Error{fmt::format("{} is not running", vm.spec.name)};
  // Changing state may wait for the guest's disk requests (pause); a query should answer at once.
  auto timeout = method == "GET" ? std::chrono::seconds(5) : std::chrono::seconds(60);
  return httpOverUnixSocket(vm.apiSocket, {method, path, body, "", timeout});
}

std::optional<ProcessUsage> Supervisor::usageOf(const VmRecord& vm) const {
  auto fields = isLive(vm) ? statFields(vm.pid) : std::nullopt;
  if (!fields || processStartTime(vm.pid) != vm.pidStartTime) return std::nullopt;
  static const double ticksPerSecond = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const uint64_t pageSize = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return ProcessUsage{static_cast<double>(*cpuTicks(vm.pid)) / ticksPerSecond,
                      std::stoull((*fields)[24 - 3]) * pageSize};  // field 24: resident pages
}

void Supervisor::adoptRunningVms() {
  for (const auto& vm : store_.vms()) {
    if (vm.state == VmState::Stopped) continue;
    auto alive = [&] { return vm.pid > 0 && processStartTime(vm.pid) == vm.pidStartTime; };
    auto reply = alive() ? vmRequest(vm, "GET", "/vm") : Result<HttpReply>(Error{"not running"});
    // One the last daemon had only just started may not answer yet.
    for (auto deadline = std::chrono::steady_clock::now() + kAdoptWait;
         (!reply || reply->status != 200) && alive() && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      reply = vmRequest(vm, "GET", "/vm");
    }
    if (!reply || reply->status != 200) {  // recovery kills it if it still runs
      log::info("{}: no longer running ({}); recorded as stopped", vm.spec.name,
                reply ? fmt::format("API status {}", reply->status) : reply.error().message);
      store_.recordStopped(vm.spec.name, std::nullopt);
      continue;
    }
    auto info = nlohmann::json::parse(reply->body, nullptr, false);
    bool paused = info.is_object() && info.value("state", "") == "paused";
    store_.recordState(vm.spec.name, paused ? VmState::Paused : VmState::Running);
    log::info("{}: adopted running VM (pid {})", vm.spec.name, vm.pid);
  }
}

void Supervisor::startWatching() {
  lastMeter_ = std::chrono::steady_clock::now();
  watcher_ = std::thread([this] { watch(); });
}

void Supervisor::watch() {
  std::unique_lock lock(watchMutex_);
  while (!watchWake_.wait_for(lock, kWatchPeriod, [this] { return stopping_; })) {
    try {
      reapChildren();
      noticeEndedVms();
      if (std::chrono::steady_clock::now() - lastMeter_ >= options_.meterInterval) meter();
    } catch (const std::exception& failure) {  // the database, or an unreadable /proc entry: try again next turn
      log::error("supervisor: {}", failure.what());
    }
  }
}

// A child that ended is looked at before it is reaped: its zombie still shows
// the CPU time it used, so a VM that ended by itself (guest poweroff, crash) is
// metered up to its end.
void Supervisor::reapChildren() {
  std::lock_guard lock(spawnMutex_);
  siginfo_t ended{};
  while (::waitid(P_ALL, 0, &ended, WEXITED | WNOHANG | WNOWAIT) == 0 && ended.si_pid > 0) {
    const pid_t pid = ended.si_pid;
    std::optional<std::string> vm;  // the live VM this child ran, if any
    for (const auto& record : store_.vms())
      if (isLive(record) && record.pid == pid) vm = record.spec.name;
    if (vm) meterVm(*vm, VmProcess::ended);
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid) break;
    if (vm) {
      log::info("{}: ended with status {}", *vm, exitCodeOf(status));
      store_.recordStopped(*vm, exitCodeOf(status));
    }
    ended = {};  // waitid leaves it as it was when no child has ended
  }
}

// VMs adopted from an earlier daemon are not our children: they are watched by pid and start time.
void Supervisor::noticeEndedVms() {
  std::lock_guard lock(spawnMutex_);
  for (const auto& vm : store_.vms())
    if (isLive(vm) && processStartTime(vm.pid) != vm.pidStartTime) {
      log::info("{}: ended", vm.spec.name);
      store_.recordStopped(vm.spec.name, std::nullopt);
    }
}

// Bytes the VM's disks hold: an image file's allocated blocks (st_blocks: a
// sparse raw file or a qcow2 overlay counts what is written, not its backing
// template), a pool volume its whole size (a thin one's mapped chunks sit in a
// pool the running VM holds locked).
uint64_t Supervisor::allocatedDiskBytes(const VmSpec& spec) {
  uint64_t bytes = 0;
  for (const auto& disk : spec.disks) {
    if (!disk.volume.empty()) {
      if (auto volume = store_.volume(disk.volume)) bytes += volume->sizeMib << 20;
      continue;
    }
    struct stat file {};
    if (::stat(disk.path.c_str(), &file) == 0) bytes += static_cast<uint64_t>(file.st_blocks) * 512;
  }
  return bytes;
}

// The run's counters now: CPU ticks from /proc (of the same process), traffic
// from the VM's own stats (its NICs count across guest reboots). nullopt when
// either cannot be read: the next round meters the longer interval. An ended
// VM (a zombie not yet reaped) answers no more: its traffic since the last
// metering is lost, the rest is counted.
std::optional<MeteredCounters> Supervisor::countersOf(const VmRecord& vm, VmProcess process) {
  auto ticks = cpuTicks(vm.pid);
  if (!ticks || startTimeOf(vm.pid, process == VmProcess::ended) != vm.pidStartTime) return std::nullopt;
  if (process == VmProcess::ended) return MeteredCounters{*ticks, vm.metered.rxBytes, vm.metered.txBytes};
  auto reply = vmRequest(vm, "GET", "/vm/stats");
  if (!reply || reply->status != 200) return std::nullopt;
  auto stats = nlohmann::json::parse(reply->body, nullptr, false);
  if (!stats.is_object()) return std::nullopt;
  MeteredCounters counters{*ticks};
  // A VM started by a strata from before NIC counters has no "nets": its traffic stays 0.
  // A VM process is not trusted with the daemon's metering: what does not parse is skipped.
  for (const auto& nic : stats.value("nets", nlohmann::json::array())) {
    auto rx = nic.is_object() && nic.contains("rx_bytes") ? nonNegativeInteger(nic["rx_bytes"]) : std::nullopt;
    auto tx = nic.is_object() && nic.contains("tx_bytes") ? nonNegativeInteger(nic["tx_bytes"]) : std::nullopt;
    if (!rx || !tx) return std::nullopt;
    counters.rxBytes += *rx;
    counters.txBytes += *tx;
  }
  return counters;
}

// Process CPU time stands for vCPU time (the vCPU threads dominate it); memory
// is what the VM was given, for as long as it ran; disks what they hold at the
// end of the interval, for all of it. Each record continues from the VM's
// metering mark in the store, so a restarted daemon loses or repeats nothing.
void Supervisor::meter() {
  for (const auto& vm : store_.vms()) meterVm(vm.spec.name);
  lastMeter_ = std::chrono::steady_clock::now();
}

void Supervisor::meterVm(const std::string& name, VmProcess process) {
  std::lock_guard lock(meterMutex_);  // one metering reads and moves a mark at a time
  static const double ticksPerSecond = static_cast<double>(::sysconf(_SC_CLK_TCK));
  constexpr double kGib = 1024.0 * 1024.0 * 1024.0;
  auto now = static_cast<int64_t>(::time(nullptr));
  auto vm = store_.vm(name);
  if (!vm || !isLive(*vm) || now <= vm->meteredAt) return;
  auto counters = countersOf(*vm, process);
  const MeteredCounters& last = vm->metered;
  if (!counters || counters->cpuTicks < last.cpuTicks || counters->rxBytes < last.rxBytes ||
      counters->txBytes < last.txBytes)
    return;
  double hours = static_cast<double>(now - vm->meteredAt) / 3600.0;
  UsageRecord record{name, vm->spec.tenant, vm->meteredAt, now};
  record.vcpuSeconds = static_cast<double>(counters->cpuTicks - last.cpuTicks) / ticksPerSecond;
  record.memoryGibHours = static_cast<double>(vm->spec.memoryMib) / 1024.0 * hours;
  record.diskGibHours = static_cast<double>(allocatedDiskBytes(vm->spec)) / kGib * hours;
  record.rxBytes = counters->rxBytes - last.rxBytes;
  record.txBytes = counters->txBytes - last.txBytes;
  store_.addUsage(record, *counters);
}

Result<void> Supervisor::start(const std::string& name) {
  auto vm = store_.vm(name);
  if (!vm) return Error{fmt::format("no VM {}", name)};
  VmPaths paths = pathsOf(name);
  auto failed = [&](const std::string& why) -> Result<void> {
    store_.recordStopped(name, std::nullopt);
    return Error{why};
  };
  if (::mkdir(paths.dir.c_str(), 0700) != 0 && errno != EEXIST) return failed(errnoError(paths.dir).message);
  ::unlink(paths.apiSocket.c_str());  // left by a VM that was killed
  ::unlink(paths.consoleSocket.c_str());

  std::vector<std::string> args =
      runArguments(vm->spec, paths.apiSocket, paths.console, resumesSnapshot(vm->spec));
  args.insert(args.begin(), options_.strataBinary);
  args.insert(args.end(), {"--console-socket", paths.consoleSocket});  // where ConsoleHub reaches the console
  Result<pid_t> pid = 0;
  {
    std::lock_guard lock(spawnMutex_);
    pid = spawnDetached(args, paths.log);
    if (pid) store_.recordRunning(name, *pid, processStartTime(*pid).value_or(0), paths.apiSocket);
  }
  if (!pid) return failed(pid.error().message);
  log::info("{}: started (pid {})", name, *pid);

  auto deadline = std::chrono::steady_clock::now() + kSocketWait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto current = store_.vm(name);
    if (!current || current->state == VmState::Stopped)
      return Error{fmt::format("{} ended while starting: {}", name, tailOf(paths.log, 2000))};
    // `strata run` answers on its API socket a moment before its console socket exists: a
    // client's console request right after the start must find it.
    auto reply = vmRequest(*current, "GET", "/vm");
    if (reply && reply->status == 200 && ::access(paths.consoleSocket.c_str(), F_OK) == 0) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (auto current = store_.vm(name)) signalVm(*current, SIGKILL);
  waitUntilStopped(name, kKillWait);
  return Error{fmt::format("{}: its API socket did not answer within {} s; killed", name, kSocketWait.count())};
}

bool Supervisor::signalVm(const VmRecord& vm, int signal) {
  std::lock_guard lock(spawnMutex_);  // the pid is not reaped (and reused) in between
  if (!isLive(vm) || processStartTime(vm.pid) != vm.pidStartTime) return false;
  return ::kill(vm.pid, signal) == 0;
}

bool Supervisor::waitUntilStopped(const std::string& name, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto vm = store_.vm(name);
    if (!vm || vm->state == VmState::Stopped) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<void> Supervisor::shutdown(const std::string& name, std::chrono::milliseconds grace) {
  auto vm = store_.vm(name);
  if (!vm || !isLive(*vm)) return Error{fmt::format("{} is not running", name)};
  meterVm(name);  // what it used up to now: once it has ended, its counters are gone
  auto asked = changeState(name, "shutdown");
  if (!asked || asked->status >= 300)
    log::warn("{}: graceful shutdown refused ({}); killing it", name,
              asked ? fmt::format("status {}: {}", asked->status, asked->body) : asked.error().message);
  else if (waitUntilStopped(name, grace))
    return {};
  else
    log::warn("{}: still running {} ms after shutdown; killing it", name, grace.count());
  return destroy(name);
}

Result<void> Supervisor::destroy(const std::string& name) {
  auto vm = store_.vm(name);
  if (!vm || !isLive(*vm)) return Error{fmt::format("{} is not running", name)};
  meterVm(name);
  signalVm(*vm, SIGKILL);
  if (!waitUntilStopped(name, kKillWait)) return Error{fmt::format("{} (pid {}) did not end after SIGKILL", name, vm->pid)};
  return {};
}

Result<HttpReply> Supervisor::changeState(const std::string& name, const std::string& action) {
  auto vm = store_.vm(name);
  if (!vm) return Error{fmt::format("no VM {}", name)};
  return vmRequest(*vm, "PUT", "/vm/state", nlohmann::json{{"action", action}}.dump());
}

}  // namespace strata::control
