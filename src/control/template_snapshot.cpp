#include "control/template_snapshot.h"

#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "control/http_client.h"
#include "control/supervisor.h"
#include "control/templates.h"

namespace strata::control {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kBootLimit = std::chrono::seconds(120);
constexpr auto kRetype = std::chrono::seconds(2);
constexpr const char* kReadyFile = "ready.json";  // written last: a snapshot without it is unfinished

std::string readAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// The VM of one snapshot being taken: ended (SIGKILL) when it goes out of scope.
class TemplateBoot {
 public:
  TemplateBoot(const TemplateSnapshotJob& job, const std::string& dir)
      : dir_(dir), console_(dir + "/console.log"), apiSocket_(dir + "/api.sock"), consoleSocket_(dir + "/tty.sock") {
    VmSpec spec = job.boot;
    spec.disks = {DiskSpec{dir + "/disk.qcow2", "qcow2", false}};
    spec.nets.clear();
    args_ = runArguments(spec, apiSocket_, console_);
    args_.insert(args_.begin(), job.strataBinary);
    args_.insert(args_.end(), {"--console-socket", consoleSocket_});
  }
  ~TemplateBoot() {
    // The daemon's supervisor reaps every child; a pid seen alive just before is still this VM.
    if (pid_ > 0 && processStartTime(pid_) == startTime_) ::kill(pid_, SIGKILL);
  }

  Result<void> start() {
    auto pid = spawnDetached(args_, dir_ + "/strata.log");
    if (!pid) return pid.error();
    pid_ = *pid;
    startTime_ = processStartTime(pid_);
    return {};
  }

  bool alive() const { return processStartTime(pid_) == startTime_; }

  // Types `input` until the console shows `answer` (the guest may not read its console yet).
  Result<void> typeUntil(const std::string& input, const std::string& answer, bool retype) {
    auto deadline = Clock::now() + kBootLimit;
    auto nextType = Clock::now();
    while (Clock::now() < deadline) {
      if (!alive()) return Error{fmt::format("the template's VM ended: {}", readAll(dir_ + "/strata.log"))};
      if (readAll(console_).find(answer) != std::string::npos) return {};
      if (Clock::now() >= nextType) {
        if (!console_fd_.valid())
          if (auto connected = connectUnixSocket(consoleSocket_)) console_fd_ = std::move(*connected);
        if (console_fd_.valid()) {
          ::send(console_fd_.get(), input.data(), input.size(), MSG_NOSIGNAL);
          nextType = retype ? Clock::now() + kRetype : deadline;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Error{fmt::format("the template's guest did not answer on its console within {} s (waiting for '{}')",
                             kBootLimit.count(), answer)};
  }

  Result<void> snapshotPaused() {
    auto reply = httpOverUnixSocket(apiSocket_, {"PUT", "/vm/snapshot", json{{"dir", dir_}, {"resume", false}}.dump(),
                                                 "", std::chrono::seconds(120)});
    if (!reply) return Error{fmt::format("snapshot: the VM's API did not answer: {}", reply.error().message)};
    if (reply->status != 200) return Error{fmt::format("snapshot refused (HTTP {}): {}", reply->status, reply->body)};
    return {};
  }

 private:
  std::string dir_, console_, apiSocket_, consoleSocket_;
  std::vector<std::string> args_;
  pid_t pid_ = 0;
  std::optional<uint64_t> startTime_;
  UniqueFd console_fd_;
};

}  // namespace

namespace {

// The generation a directory name gives a template's snapshot: NAME.snapshot is 0, NAME.snapshot.G is G.
std::optional<uint64_t> snapshotGeneration(const std::string& fileName, const std::string& templateName) {
  const std::string base = templateName + ".snapshot";
  if (fileName == base) return 0;
  if (fileName.rfind(base + ".", 0) != 0) return std::nullopt;
  std::string digits = fileName.substr(base.size() + 1);
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(digits);
}

// The template a snapshot directory's name belongs to ("" for none): the part before ".snapshot".
std::string snapshotTemplateName(const std::string& fileName) {
  size_t at = fileName.find(".snapshot");
  if (at == std::string::npos) return {};
  std::string name = fileName.substr(0, at);
  return snapshotGeneration(fileName, name) ? name : std::string{};
}

std::optional<TemplateSnapshot> readSnapshotIn(const std::string& dir) {
  json ready = json::parse(readAll(dir + "/" + kReadyFile), nullptr, false);
  if (!ready.is_object()) return std::nullopt;
  return TemplateSnapshot{dir,
                          ready.value("cpus", 1u),
                          ready.value("memory_mib", uint64_t{0}),
                          ready.value("kernel", ""),
                          ready.value("initrd", ""),
                          ready.value("append", "")};
}

// Of one template: the finished snapshots older than the newest finished one (unused ones go), and the
// unfinished ones (which go only with `unfinishedToo`).
void removeStale(const std::string& dataDir, const std::string& templateName, const SnapshotInUse& inUse,
                 bool unfinishedToo) {
  auto current = readTemplateSnapshot(dataDir, templateName);
  std::error_code error;
  for (const auto& dir : templateSnapshotDirs(dataDir, templateName)) {
    if (current && dir == current->dir) continue;
    bool finished = readSnapshotIn(dir).has_value();
    if (finished ? (!current || inUse(dir)) : !unfinishedToo) continue;
    log::info("{}: removing this template snapshot, {}", dir, finished ? "replaced and used by no VM" : "left unfinished");
    std::filesystem::remove_all(dir, error);
  }
}

}  // namespace

std::vector<std::string> templateSnapshotDirs(const std::string& dataDir, const std::string& templateName) {
  std::map<uint64_t, std::string> dirs;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dataDir + "/templates", error))
    if (auto generation = snapshotGeneration(entry.path().filename().string(), templateName); generation && entry.is_directory())
      dirs[*generation] = entry.path().string();
  std::vector<std::string> ordered;
  for (auto& [generation, dir] : dirs) ordered.push_back(std::move(dir));
  return ordered;
}

std::optional<TemplateSnapshot> readTemplateSnapshot(const std::string& dataDir, const std::string& templateName) {
  auto dirs = templateSnapshotDirs(dataDir, templateName);
  for (auto dir = dirs.rbegin(); dir != dirs.rend(); ++dir)
    if (auto snapshot = readSnapshotIn(*dir)) return snapshot;
  return std::nullopt;
}

std::optional<std::string> nextTemplateSnapshotDir(const std::string& dataDir, const std::string& templateName) {
  auto dirs = templateSnapshotDirs(dataDir, templateName);
  if (dirs.empty()) return dataDir + "/templates/" + templateName + ".snapshot";
  for (const auto& dir : dirs)
    if (!readSnapshotIn(dir)) return std::nullopt;
  uint64_t newest = *snapshotGeneration(std::filesystem::path(dirs.back()).filename().string(), templateName);
  return fmt::format("{}/templates/{}.snapshot.{}", dataDir, templateName, newest + 1);
}

SnapshotInUse resumedByAnyVm(Store& store) {
  return [&store](const std::string& dir) {
    for (const auto& vm : store.vms())
      if (vm.spec.restoreFrom == dir) return true;
    return false;
  };
}

void removeReplacedTemplateSnapshots(const std::string& dataDir, const std::string& templateName,
                                     const SnapshotInUse& inUse) {
  removeStale(dataDir, templateName, inUse, false);
}

void dropStaleTemplateSnapshots(const std::string& dataDir, const SnapshotInUse& inUse) {
  std::set<std::string> templates;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dataDir + "/templates", error))
    if (auto name = snapshotTemplateName(entry.path().filename().string()); !name.empty()) templates.insert(name);
  for (const auto& name : templates) removeStale(dataDir, name, inUse, true);
}

Result<void> takeTemplateSnapshot(const TemplateSnapshotJob& job,
                                  const std::function<void(uint64_t done, uint64_t total)>& progress) {
  const std::string& dir = job.dir;
  std::error_code error;
  auto failed = [&](const Error& why) -> Result<void> {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return why;
  };
  if (auto cloned = createLinkedClone(job.source.path, job.source.virtualSize, dir + "/disk.qcow2"); !cloned)
    return failed(cloned.error());
  constexpr uint64_t kSteps = 4;
  progress(0, kSteps);
  {
    TemplateBoot boot(job, dir);
    if (auto started = boot.start(); !started) return failed(started.error());
    // Arithmetic in the command: the answer differs from the echo of what was typed.
    if (auto up = boot.typeUntil("echo strata-template-$((6*7))\n", "strata-template-42", true); !up)
      return failed(up.error());
    progress(1, kSteps);
    if (!job.commands.empty()) {
      if (auto done = boot.typeUntil(job.commands + "\necho strata-prepared-$((6*8))\n", "strata-prepared-48", false);
          !done)
        return failed(done.error());
    }
    progress(2, kSteps);
    if (auto taken = boot.snapshotPaused(); !taken) return failed(taken.error());
    progress(3, kSteps);
  }
  json ready = {{"cpus", job.boot.cpus},     {"memory_mib", job.boot.memoryMib}, {"kernel", job.boot.kernel},
                {"initrd", job.boot.initrd}, {"append", job.boot.append}};
  std::ofstream(dir + "/" + kReadyFile + ".new") << ready.dump();
  std::filesystem::rename(dir + "/" + kReadyFile + ".new", dir + "/" + kReadyFile, error);
  if (error) return failed(Error{fmt::format("{}: {}", dir, error.message())});
  return {};
}

}  // namespace strata::control
