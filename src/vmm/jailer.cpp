#include "vmm/jailer.h"

#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <link.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/core.h>

#include "network/tap.h"
#include "storage/disk_image.h"
#include "storage/volume/volume_disk.h"

namespace strata::vmm {
namespace {

// A host file made visible inside the jail by a bind mount.
struct JailFile {
  std::string source;  // host path
  std::string target;  // path inside the jail
  bool readOnly = true;
  bool executable = false;  // the strata binary and its libraries
};

struct JailPlan {
  std::vector<JailFile> files;
  std::vector<std::string> arguments;  // argv of the jailed `strata run`
  rlim_t maxFileBytes = 0;             // RLIMIT_FSIZE: guest RAM, the writable disks' growth
};

constexpr const char* kJailedBinary = "/strata";
constexpr rlim_t kJailedOpenFiles = 1024;
constexpr int kFirstHandedFd = 3;

// The strata binary, the dynamic loader and every shared library loaded now:
// exactly what exec'ing strata inside the jail needs, mounted at their own paths.
Result<void> addProgramFiles(std::vector<JailFile>& files) {
  char self[4096];
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return errnoError("readlink /proc/self/exe");
  files.push_back({std::string(self, static_cast<size_t>(length)), kJailedBinary, true, true});
  struct Collected {
    std::vector<JailFile>* files;
    bool sawProgram = false;
  } collected{&files};
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& state = *static_cast<Collected*>(data);
        if (!state.sawProgram) {  // the first object is the program: its PT_INTERP names the loader
          state.sawProgram = true;
          for (int i = 0; i < info->dlpi_phnum; ++i)
            if (info->dlpi_phdr[i].p_type == PT_INTERP) {
              std::string loader(reinterpret_cast<const char*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr));
              state.files->push_back({loader, loader, true, true});
            }
          return 0;
        }
        if (info->dlpi_name != nullptr && info->dlpi_name[0] == '/')
          state.files->push_back({info->dlpi_name, info->dlpi_name, true, true});
        return 0;
      },
      &collected);
  return {};
}

// Room for a writable disk to grow: a qcow2 image up to its virtual size plus
// metadata; a raw image never grows.
Result<rlim_t> diskGrowthLimit(const std::string& path) {
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  storage::DiskOptions options;
  options.readOnly = true;
  auto image = storage::openDiskImage(path, options, **loop);
  if (!image) return image.error();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError(path);
  uint64_t virtualBytes = (*image)->sizeBytes();
  return static_cast<rlim_t>(std::max<uint64_t>(st.st_size, virtualBytes + virtualBytes / 8 + (64u << 20)));
}

// The --engine value that gives the jailed VM the same CPU engine.
std::string engineArgument(const cpu::EngineConfig& engine) {
  if (engine.kind != cpu::EngineKind::Jit) return cpu::engineName(engine.kind);
  return fmt::format("{},threshold={}", cpu::engineName(engine.kind), engine.translateThreshold);
}

Result<JailPlan> planJail(const VmConfig& config) {
  if (config.console.kind != ConsoleConfig::Kind::Stdio)
    return Error{"--jail: only the stdio console is supported (a pty or file would live outside the jail)"};
  if (!config.tapFds.empty()) return Error{"--jail: give --net tap=NAME; the jailer opens the interface itself"};
  if (!config.switchNets.empty())
    return Error{"--jail: --net switch= is not supported yet (the switch's socket lives outside the jail)"};
  JailPlan plan;
  plan.arguments = {kJailedBinary, "run"};
  auto addBootFile = [&](const std::string& path, const char* name, const char* option) {
    if (path.empty()) return;
    plan.files.push_back({path, std::string("/") + name, true, false});
    plan.arguments.insert(plan.arguments.end(), {option, std::string("/") + name});
  };
  addBootFile(config.firmware, "firmware", "--firmware");
  addBootFile(config.bareProgram, "program", "--bare");
  addBootFile(config.kernel, "kernel", "--kernel");
  addBootFile(config.initrd, "initrd", "--initrd");
  // RLIMIT_FSIZE also bounds guest RAM's memfd.
  plan.maxFileBytes = static_cast<rlim_t>(config.memoryBytes);
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const DiskConfig& disk = config.disks[i];
    if (storage::volume::isVolumeDiskSpec(disk.path))
      return Error{fmt::format("--jail: pool volume {} is not supported; give an image file", disk.path)};
    std::string target = fmt::format("/disk{}", i);
    plan.files.push_back({disk.path, target, disk.readOnly, false});
    std::string options = disk.readOnly ? ",readonly" : "";
    if (disk.format != storage::ImageFormat::Auto) options += fmt::format(",format={}", storage::formatName(disk.format));
    plan.arguments.insert(plan.arguments.end(), {"--disk", target + options});
    if (!disk.readOnly) {
      auto limit = diskGrowthLimit(disk.path);
      if (!limit) return limit.error();
      plan.maxFileBytes = std::max(plan.maxFileBytes, *limit);
    }
  }
  // TAP fds are opened before the privilege drop and renumbered from 3 up.
  for (size_t i = 0; i < config.tapDevices.size(); ++i)
    plan.arguments.insert(plan.arguments.end(), {"--net", fmt::format("tapfd={}", kFirstHandedFd + i)});
  plan.arguments.insert(plan.arguments.end(),
                        {"--append", config.commandLine, "--mem", fmt::format("{}K", config.memoryBytes >> 10), "--cpus",
                         std::to_string(config.cpus), "--console", "stdio", "--seccomp",
                         config.sandbox.seccomp ? "on" : "off", "--landlock", config.sandbox.landlock ? "on" : "off",
                         "--engine", engineArgument(config.engine)});
  if (auto added = addProgramFiles(plan.files); !added) return added.error();
  // The loader is both the program's PT_INTERP and a loaded object: bind it once.
  std::sort(plan.files.begin(), plan.files.end(), [](auto& a, auto& b) { return a.target < b.target; });
  plan.files.erase(std::unique(plan.files.begin(), plan.files.end(),
                               [](auto& a, auto& b) { return a.target == b.target; }),
                   plan.files.end());
  return plan;
}

// ---- inside the child (PID 1 of the new namespace) ---------------------------
// Failures print one line and exit: there is no caller left to return to.

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "strata: jail: %s: %s\n", what.c_str(), std::strerror(errno));
  ::_exit(1);
}

void makeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + dir);
  }
}

void bindFile(const std::string& root, const JailFile& file) {
  std::string target = root + file.target;
  makeParents(target);
  int placeholder = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (placeholder < 0) die("create " + target);
  ::close(placeholder);
  if (::mount(file.source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) die("bind " + file.source);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
  if (file.readOnly) flags |= MS_RDONLY;
  if (!file.executable) flags |= MS_NOEXEC;
  if (::mount(nullptr, target.c_str(), nullptr, flags, nullptr) != 0) die("remount " + target);
}

// The new root: a small tmpfs over DIR (so DIR is left empty on the host) with
// the planned files bound in. No device nodes: the VM gets its randomness from
// getrandom(2) and its TAP interfaces as fds.
void buildRoot(const std::string& root, const JailPlan& plan) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("make mounts private");
  if (::mount("tmpfs", root.c_str(), "tmpfs", MS_NOSUID, "size=1m,mode=0755") != 0) die("mount tmpfs on " + root);
  for (const JailFile& file : plan.files) bindFile(root, file);
}

void enterRoot(const std::string& root) {
  if (::chdir(root.c_str()) != 0) die("chdir " + root);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) die("detach the old root");
  if (::chdir("/") != 0) die("chdir /");
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID, nullptr) != 0) die("remount / read-only");
}

void setLimit(int resource, rlim_t value, const char* name) {
  rlimit limit{value, value};
  if (::setrlimit(resource, &limit) != 0) die(name);
}

void dropPrivileges(const JailConfig& jail) {
  if (::setgroups(0, nullptr) != 0) die("setgroups");
  if (::setresgid(jail.gid, jail.gid, jail.gid) != 0) die("setresgid");
  if (::setresuid(jail.uid, jail.uid, jail.uid) != 0) die("setresuid");
}

// The TAP fds become 3, 4, ... (inherited across exec); every other fd beyond
// stdio is closed.
void keepOnly(const std::vector<UniqueFd>& taps) {
  std::vector<int> moved;
  for (const UniqueFd& tap : taps) {  // out of the way of the numbers they move to
    moved.push_back(::fcntl(tap.get(), F_DUPFD_CLOEXEC, kFirstHandedFd + static_cast<int>(taps.size())));
    if (moved.back() < 0) die("dup TAP fd");
  }
  for (size_t i = 0; i < moved.size(); ++i)
    if (::dup2(moved[i], kFirstHandedFd + static_cast<int>(i)) < 0) die("dup2 TAP fd");
  unsigned firstClosed = kFirstHandedFd + static_cast<unsigned>(taps.size());
  if (::syscall(SYS_close_range, firstClosed, ~0u, 0) != 0) die("close_range");
}

[[noreturn]] void runInJail(const JailConfig& jail, const JailPlan& plan, const std::vector<UniqueFd>& taps) {
  buildRoot(jail.dir, plan);
  enterRoot(jail.dir);
  if (::sethostname("strata-jail", 11) != 0) die("sethostname");
  setLimit(RLIMIT_NOFILE, kJailedOpenFiles, "RLIMIT_NOFILE");
  setLimit(RLIMIT_FSIZE, plan.maxFileBytes, "RLIMIT_FSIZE");
  setLimit(RLIMIT_CORE, 0, "RLIMIT_CORE");  // a core would hold guest memory
  keepOnly(taps);
  dropPrivileges(jail);
  std::vector<char*> argv;
  for (const auto& argument : plan.arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  char* noEnvironment[] = {nullptr};
  ::execve(kJailedBinary, argv.data(), noEnvironment);
  die(std::string("exec ") + kJailedBinary);
}

}  // namespace

Result<int> runJailed(const VmConfig& config, const JailConfig& jail) {
  if (::geteuid() != 0) return Error{"--jail needs root: it creates namespaces and mounts, then drops to --uid/--gid"};
  if (jail.uid == 0 || jail.gid == 0) return Error{"--jail: --uid and --gid must name an unprivileged user and group"};
  if (jail.dir.empty() || jail.dir[0] != '/') return Error{fmt::format("--jail {}: must be an absolute path", jail.dir)};
  auto plan = planJail(config);
  if (!plan) return plan.error();
  if (::mkdir(jail.dir.c_str(), 0755) != 0 && errno != EEXIST) return errnoError("--jail " + jail.dir);
  std::vector<UniqueFd> taps;  // opened here, with the privileges the VM will not have
  for (const auto& name : config.tapDevices) {
    auto tap = network::TapDevice::openFd(name);
    if (!tap) return Error{fmt::format("--net tap={}: {}", name, tap.error().message)};
    taps.push_back(std::move(*tap));
  }
  // The new PID namespace holds the next child, which becomes its PID 1.
  if (::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0) return errnoError("unshare");
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) return errnoError("fork");
  if (child == 0) runInJail(jail, *plan, taps);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0)
    if (errno != EINTR) return errnoError("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace strata::vmm
