#include "vmm/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "base/log.h"
#include "base/unique_fd.h"
#include "storage/volume/volume_disk.h"
#include "syscall_names.h"  // generated from the kernel headers (cmake/syscall_names.cmake)

namespace strata::vmm {
namespace {

// ---- seccomp ----------------------------------------------------------------
//
// Forbidden syscalls trap (SECCOMP_RET_TRAP) rather than kill outright: the
// syscall never runs either way, and the SIGSYS handler gets to name it before
// the process dies of SIGSYS. A compromised VMM that replaced the handler would
// only stop dying, never get the syscall.

// vCPU threads: guest code, and device models reached through MMIO that post
// work to the I/O loop (an eventfd write) or write console output; glibc's
// allocator, locks and clocks; thread exit; and the SIGSYS handler itself
// (write, gettid, tgkill below). mmap/mprotect (PROT_EXEC included) serve a
// translator's code cache. Filters stack and a vCPU thread inherits the I/O
// loop's, so this list must stay a subset of the I/O loop's. (strace -f of a
// boot, disk I/O, reboot and poweroff shows write, futex, mmap, munmap,
// mprotect, madvise, rt_sigprocmask and exit on vCPU threads.)
constexpr const char* kVcpu[] = {
    "write", "writev", "futex", "sched_yield", "clock_gettime",
    "sendto",  // console output to a --console-socket client (send, never blocking)
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
    "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
    // PUT /vm/snapshot writes the paused VM's state and memory files (GuestMachine::saveSnapshot;
    // lseek finds the RAM memfd's holes).
    "openat", "pwrite64", "ftruncate", "fsync", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "lseek",
    // glibc's qsort asks for the memory size once per process, at its first sort of 1 KiB or more:
    // capstone sorts a register table at its first disassembly, in the vCPU thread that traces
    // (--engine-trace). OpenSSL's initialiser used to sort first, when every process loaded it.
    "sysinfo",
};

// The main thread, beyond the vCPU list: the event loop over disks (io_uring),
// TAP, console and timers, and everything building a new board after a guest
// reboot needs (guest RAM memfd, reopening kernel, initrd and disks, which
// Landlock limits to the VM's own files, starting vCPU threads).
constexpr const char* kIoLoopExtra[] = {
    "read", "readv", "close", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2",
    "timerfd_create", "timerfd_settime", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "openat", "newfstatat", "fstat", "lseek", "pread64", "pwrite64", "pwritev2", "fsync", "fdatasync",
    "fallocate", "ftruncate", "fcntl", "flock", "readlink", "memfd_create", "getrandom",
    "sendto", "recvfrom",       // frames to and from a `strata switch` port (send/recv with flags)
    "accept4",                  // a --console-socket client
    "rseq", "set_robust_list",  // a new thread's first calls, made before it enters its own role
    "rt_sigaction",             // glibc sets up its thread-control signal at the first pthread_create
};

// The API thread: accepting and serving its socket's clients (httplib reads
// and writes with recv/send, waits with poll or select, sets timeouts with
// setsockopt), glibc's allocator, locks and clocks, and, last, unlinking its
// socket file (an argument rule below: that path only). Control operations
// reach the VM through VmControl's locks and the event loop's eventfd (write).
constexpr const char* kApi[] = {
    "accept", "accept4", "read", "recvfrom", "write", "writev", "sendto", "poll", "ppoll", "select", "pselect6",
    "close", "shutdown", "setsockopt", "getsockopt", "getsockname", "getpeername", "fcntl",
    "futex", "sched_yield", "clock_gettime", "clock_nanosleep", "nanosleep",
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
    "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
    // PUT /vm/snapshot writes the paused VM's state and memory files (GuestMachine::saveSnapshot;
    // lseek finds the RAM memfd's holes) and creates each disk image's overlay, which the I/O
    // loop, whose Landlock rules admit no new file, opens from the descriptor (LiveDisk::addOverlay).
    "openat", "pwrite64", "ftruncate", "fsync", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "lseek",
    // GET /vm and /vm/stats read /proc/self/ksm_merging_pages through the fd PageSharingReport holds.
    "pread64",
    // PUT /vm/migrate with "tls_ca" loads the CA file (GnuTLS checks it, opens and sizes it); the first
    // such request loads the TLS module (storage/tls_module.h: readlink finds it beside the executable,
    // then openat, pread64, mmap, mprotect), and GnuTLS starting reads its config file and seeds its
    // generator from getrandom.
    "access", "faccessat", "faccessat2", "fstat", "newfstatat", "getrandom", "readlink",
};
// The live migration sender: IPv4 TCP sockets (an argument rule below) to the
// destination, sends and receives with timeouts, skipping the RAM memfd's holes
// (lseek SEEK_DATA), pausing and ending the VM through VmControl (futex, the
// loop's eventfd write), glibc's allocator, locks and clocks. A post-copy
// destination's fetcher has the same role: its userfaultfd (read, and the
// ioctls in an argument rule below) was opened and registered before.
// With TLS (migration_tls.h) it starts a relay thread per channel (threads
// only: an argument rule below) joined to it by a socketpair, and GnuTLS draws
// randomness.
constexpr const char* kMigration[] = {
    "connect", "setsockopt", "getsockopt", "sendto", "recvfrom", "read", "write", "poll", "ppoll", "close",
    "shutdown", "lseek", "futex", "sched_yield", "clock_gettime", "clock_nanosleep", "nanosleep",
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
    "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
    "socketpair", "getrandom", "rseq", "set_robust_list",
};

// The GDB stub's thread: accepting and serving one TCP client (recv, send,
// poll, socket options), its eventfd, glibc's allocator, locks and clocks. It
// reaches the VM through VmControl (locks, the event loop's eventfd) and reads
// guest memory directly; vCPU threads do the stepping.
constexpr const char* kGdb[] = {
    "accept", "accept4", "read", "recvfrom", "write", "writev", "sendto", "poll", "ppoll",
    "close", "shutdown", "setsockopt", "getsockopt", "getsockname", "getpeername", "fcntl",
    "futex", "sched_yield", "clock_gettime", "clock_nanosleep", "nanosleep",
    "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
    "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "exit", "exit_group", "getpid", "gettid",
};

// The name of syscall `number`, or "?": from a table generated from the kernel
// headers (syscall_names.h), as the handler may not allocate (libseccomp's lookup does).
const char* syscallName(int number) {
  if (number < 0 || number >= syscall_names::kCount || syscall_names::kStart[number] == 0) return "?";
  return syscall_names::kText + syscall_names::kStart[number] - 1;
}
thread_local ThreadRole currentRole;
thread_local bool inRole = false;
// How many threads have entered the vCPU role (waitForVcpuThreads).
struct {
  std::mutex mutex;
  std::condition_variable changed;
  unsigned started = 0;
} vcpuThreads;

void appendText(char*& out, const char* end, const char* text) {
  while (*text != '\0' && out < end) *out++ = *text++;
}

void appendNumber(char*& out, const char* end, long value) {
  char digits[24];
  int count = 0;
  unsigned long magnitude = value < 0 ? 0ul - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
  do {
    digits[count++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0 && out < end) *out++ = '-';
  while (count > 0 && out < end) *out++ = digits[--count];
}

// Async-signal-safe: formats into a stack buffer, one write(2), then dies of
// SIGSYS (the handler was installed SA_RESETHAND, so the default action is back).
void onForbiddenSyscall(int, siginfo_t* info, void*) {
  char line[160];
  char* out = line;
  const char* end = line + sizeof line - 1;
  int number = info->si_syscall;
  appendText(out, end, "strata: seccomp: ");
  // A thread not yet in its own role runs under its creator's filter.
  appendText(out, end, inRole ? threadRoleName(currentRole) : "starting");
  appendText(out, end, " thread made forbidden syscall ");
  appendText(out, end, syscallName(number));
  appendText(out, end, " (");
  appendNumber(out, end, number);
  appendText(out, end, "); killing the VM\n");
  [[maybe_unused]] auto written = ::write(STDERR_FILENO, line, static_cast<size_t>(out - line));
  ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), SIGSYS);
  ::_exit(128 + SIGSYS);  // not reached: SIGSYS is not blocked here (SA_NODEFER)
}

Result<void> installSigsysHandler() {
  static std::once_flag once;
  static int failure = 0;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = onForbiddenSyscall;
    action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (::sigaction(SIGSYS, &action, nullptr) != 0) failure = errno;
  });
  if (failure != 0) return errnoError("sigaction(SIGSYS)", failure);
  return {};
}

struct FilterDeleter {
  void operator()(scmp_filter_ctx context) const { seccomp_release(context); }
};
using Filter = std::unique_ptr<void, FilterDeleter>;

Result<void> allow(scmp_filter_ctx filter, const char* name) {
  int number = seccomp_syscall_resolve_name(name);
  if (number == __NR_SCMP_ERROR) return Error{fmt::format("seccomp: unknown syscall {}", name)};
  if (int rc = seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0); rc < 0)
    return errnoError(fmt::format("seccomp_rule_add({})", name), -rc);
  return {};
}

// Rules that look at arguments: only the kinds of call the role really makes.
Result<void> addArgumentRules(scmp_filter_ctx filter, ThreadRole role, const VmConfig& config) {
  auto check = [](int rc, const char* what) -> Result<void> {
    if (rc < 0) return errnoError(fmt::format("seccomp_rule_add({})", what), -rc);
    return {};
  };
  // Signals only to this process's own threads (the SIGSYS handler, abort()).
  auto self = static_cast<scmp_datum_t>(::getpid());
  if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, self)), "tgkill");
      !ok)
    return ok;
  // Roles that open no file: glibc still opens /proc/sys/vm/overcommit_memory the first time
  // it shrinks a thread's heap (a migration's channel buffers freed); refused, it uses madvise.
  if (role == ThreadRole::Migration || role == ThreadRole::Gdb)
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0), "openat"); !ok) return ok;
  if (role == ThreadRole::Vcpu || role == ThreadRole::Gdb) return {};
  // The I/O loop and migration start threads, never processes: glibc tries
  // clone3 first, whose flags sit behind a pointer the filter cannot read, so it
  // answers ENOSYS and glibc falls back to clone, whose flags it can. Threads
  // they start (vCPUs, TLS relays) add their own filter on top of this one.
  if (role == ThreadRole::IoLoop || role == ThreadRole::Migration) {
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3"); !ok) return ok;
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                         SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)),
                        "clone");
        !ok)
      return ok;
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                         SCMP_A0(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS)),
                        "prctl");
        !ok)
      return ok;
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
                                         SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER)),
                        "seccomp");
        !ok)
      return ok;
  }
  if (role == ThreadRole::Migration) {
    for (unsigned long request : {static_cast<unsigned long>(UFFDIO_COPY), static_cast<unsigned long>(UFFDIO_WAKE),
                                  static_cast<unsigned long>(UFFDIO_UNREGISTER)})
      if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, request)),
                          "ioctl");
          !ok)
        return ok;
    return check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET)), "socket");
  }
  if (role == ThreadRole::Api) {
    // The pointer compared is config.apiSocket's buffer, the one ApiServer passes.
    auto socketPath = static_cast<scmp_datum_t>(reinterpret_cast<uintptr_t>(config.apiSocket.c_str()));
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(unlink), 1, SCMP_A0(SCMP_CMP_EQ, socketPath)),
                        "unlink");
        !ok)
      return ok;
    return check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(unlinkat), 1, SCMP_A1(SCMP_CMP_EQ, socketPath)),
                 "unlinkat");
  }
  // ioctl: attaching a TAP interface (by name or a handed-over fd) and its offloads, the
  // console's terminal modes, and a host block device's size (a disk reopened).
  for (unsigned long request : {static_cast<unsigned long>(TUNSETIFF), static_cast<unsigned long>(TUNGETIFF),
                                static_cast<unsigned long>(TUNSETOFFLOAD),
                                static_cast<unsigned long>(TCGETS), static_cast<unsigned long>(TCSETS),
                                static_cast<unsigned long>(BLKGETSIZE64)}) {
    if (auto ok = check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, request)),
                        "ioctl");
        !ok)
      return ok;
  }
  return {};
}

Result<Filter> buildSeccompFilter(ThreadRole role, const VmConfig& config) {
  Filter filter(seccomp_init(SCMP_ACT_TRAP));
  if (!filter) return Error{"seccomp_init failed"};
  // A syscall of another ABI (i386, x32) is never ours: kill without a word.
  if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
    return errnoError("seccomp_attr_set", -rc);
  if (role == ThreadRole::Api) {
    for (const char* name : kApi)
      if (auto ok = allow(filter.get(), name); !ok) return ok.error();
  } else if (role == ThreadRole::Migration) {
    for (const char* name : kMigration)
      if (auto ok = allow(filter.get(), name); !ok) return ok.error();
  } else if (role == ThreadRole::Gdb) {
    for (const char* name : kGdb)
      if (auto ok = allow(filter.get(), name); !ok) return ok.error();
  } else {
    for (const char* name : kVcpu)
      if (auto ok = allow(filter.get(), name); !ok) return ok.error();
  }
  if (role == ThreadRole::IoLoop)
    for (const char* name : kIoLoopExtra)
      if (auto ok = allow(filter.get(), name); !ok) return ok.error();
  if (auto ok = addArgumentRules(filter.get(), role, config); !ok) return ok.error();
  return filter;
}

// The I/O loop's and the vCPU threads' BPF programs, compiled by a helper thread
// prepareSeccompPrograms() starts as the VM starts, while the main thread restores
// or builds the board (libseccomp's compiling costs ~1 ms and ~35 page faults per
// program); the I/O loop thread loads its own as it enters its role, and every vCPU
// thread the same vCPU program. Not prepared, the I/O loop thread compiles both as
// it enters its role (before its own filter forbids the memfd a program is exported
// through); should compiling fail, each thread compiles its own (and reports why).
struct CompiledPrograms {
  pid_t pid = 0;  // the tgkill rule names this process: a forked child compiles its own
  bool compiling = false;
  std::vector<sock_filter> ioLoop, vcpu;  // empty: not compiled
};
std::mutex programsMutex;
std::condition_variable programsReady;
CompiledPrograms programs;

Result<std::vector<sock_filter>> exportProgram(scmp_filter_ctx filter) {
  UniqueFd memory(::memfd_create("strata-seccomp", MFD_CLOEXEC));
  if (!memory.valid()) return errnoError("memfd_create");
  if (int rc = seccomp_export_bpf(filter, memory.get()); rc < 0) return errnoError("seccomp_export_bpf", -rc);
  off_t size = ::lseek(memory.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    return Error{fmt::format("seccomp_export_bpf: a program of {} bytes", size)};
  std::vector<sock_filter> instructions(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(memory.get(), instructions.data(), static_cast<size_t>(size), 0) != size)
    return errnoError("reading the exported seccomp program");
  return instructions;
}

std::vector<sock_filter> compileProgram(ThreadRole role, const VmConfig& config) {
  auto filter = buildSeccompFilter(role, config);
  if (!filter) return {};
  auto instructions = exportProgram(filter->get());
  return instructions ? std::move(*instructions) : std::vector<sock_filter>{};
}

// The role's program compiled beforehand, waiting for the helper if it still compiles; empty if none.
std::vector<sock_filter> compiledProgram(ThreadRole role) {
  std::unique_lock lock(programsMutex);
  if (programs.pid != ::getpid()) return {};
  programsReady.wait(lock, [] { return !programs.compiling; });
  return role == ThreadRole::IoLoop ? programs.ioLoop : programs.vcpu;
}

Result<void> loadProgram(std::vector<sock_filter>& instructions) {
  sock_fprog program{static_cast<unsigned short>(instructions.size()), instructions.data()};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) return errnoError("seccomp(SECCOMP_SET_MODE_FILTER)");
  return {};
}

// Compiles both programs into `programs` and wakes whoever waits for them: the helper
// thread's work, or the I/O loop thread's when none was prepared.
void compileBoth(const VmConfig& config) {
  auto ioLoop = compileProgram(ThreadRole::IoLoop, config);
  auto vcpu = compileProgram(ThreadRole::Vcpu, config);
  std::lock_guard lock(programsMutex);
  programs = CompiledPrograms{::getpid(), false, std::move(ioLoop), std::move(vcpu)};
  programsReady.notify_all();
}

void compileUnlessPrepared(const VmConfig& config) {
  {
    std::lock_guard lock(programsMutex);
    if (programs.pid == ::getpid()) return;
  }
  compileBoth(config);
}

Result<void> loadSeccompFilter(ThreadRole role, const VmConfig& config) {
  if (auto installed = installSigsysHandler(); !installed) return installed;
  if (role == ThreadRole::IoLoop) compileUnlessPrepared(config);
  if (role == ThreadRole::IoLoop || role == ThreadRole::Vcpu)
    if (auto compiled = compiledProgram(role); !compiled.empty()) return loadProgram(compiled);
  auto filter = buildSeccompFilter(role, config);
  if (!filter) return filter.error();
  if (int rc = seccomp_load(filter->get()); rc < 0) return errnoError("seccomp_load", -rc);
  return {};
}

}  // namespace

void prepareSeccompPrograms(const VmConfig& config) {
  if (!config.sandbox.seccomp) return;
  {
    std::lock_guard lock(programsMutex);
    if (programs.pid == ::getpid()) return;
    programs = CompiledPrograms{::getpid(), true, {}, {}};
  }
  std::thread([config] { compileBoth(config); }).detach();
}

namespace {

// ---- Landlock ---------------------------------------------------------------
//
// Called through syscall(2): glibc on Debian 12 has no wrappers. The rights
// handled are those of ABI 1-3 (the ones this code knows); anything the kernel
// added later is left to seccomp.

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)  // ABI 3; Debian 12's headers stop at ABI 2
#endif

constexpr uint64_t kReadRights = LANDLOCK_ACCESS_FS_READ_FILE;
constexpr uint64_t kAbi1Rights = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // EXECUTE .. MAKE_SYM

int landlockAbi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

uint64_t handledRights(int abi) {
  uint64_t rights = kAbi1Rights;
  if (abi >= 2) rights |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
  return rights;
}

uint64_t writeRights(int abi) {
  return LANDLOCK_ACCESS_FS_WRITE_FILE | (abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0);
}

Result<void> addFileRule(int ruleset, int fd, uint64_t rights) {
  landlock_path_beneath_attr rule{};
  rule.allowed_access = rights;
  rule.parent_fd = fd;
  if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
    return errnoError("landlock_add_rule");
  return {};
}

Result<void> addPathRule(int ruleset, const std::string& path, uint64_t rights) {
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) return errnoError(fmt::format("landlock: {}", path));
  return addFileRule(ruleset, fd.get(), rights);
}

// The process's open descriptors: listed from /proc/self/fd, or, inside the
// jailer's root where there is no /proc, found by one poll(2) over every
// number the fd limit allows (a closed one answers POLLNVAL; a syscall per
// number, tens of thousands under a high limit, would cost more than the rest
// of a restore, and the poll's 512 KiB of probes still cost a restore ~2 ms).
std::vector<int> openDescriptors() {
  std::vector<int> open;
  if (DIR* listing = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(listing);
    while (const dirent* entry = ::readdir(listing)) {
      int fd = -1;
      auto [end, error] = std::from_chars(entry->d_name, entry->d_name + std::strlen(entry->d_name), fd);
      if (error == std::errc() && *end == '\0' && fd != own) open.push_back(fd);
    }
    ::closedir(listing);
    return open;
  }
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  std::vector<pollfd> probes(std::min<rlim_t>(limit.rlim_cur, 65536));
  for (size_t fd = 0; fd < probes.size(); ++fd) probes[fd] = {static_cast<int>(fd), 0, 0};
  if (::poll(probes.data(), probes.size(), 0) < 0) {  // cannot list them: every number is a candidate
    for (const auto& probe : probes) open.push_back(probe.fd);
    return open;
  }
  for (const auto& probe : probes)
    if ((probe.revents & POLLNVAL) == 0) open.push_back(probe.fd);
  return open;
}

// Every file or block device the process holds open (disk images, their backing files,
// a pool's PVs, a console log) stays reachable with the access it was opened
// with, so a reboot can open them again. The API thread may be loading the HTTP
// module meanwhile: a library file it opened gets a harmless read rule, and one
// it closed again before its rule was added needs none.
Result<void> addOpenFileRules(int ruleset, int abi) {
  for (int fd : openDescriptors()) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) continue;
    struct stat st {};
    // Files without a name (guest RAM's memfd, deleted files) cannot be reopened and need no rule.
    if (::fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) || st.st_nlink == 0 ||
        (flags & O_PATH) != 0)
      continue;
    uint64_t rights = kReadRights;
    if ((flags & O_ACCMODE) != O_RDONLY) rights |= writeRights(abi);
    if (auto added = addFileRule(ruleset, fd, rights); !added && ::fcntl(fd, F_GETFD) >= 0) return added;
  }
  return {};
}

// The files a reboot opens again by path, beyond those held open.
void bootFiles(const VmConfig& config, std::vector<std::string>& readOnly, std::vector<std::string>& readWrite) {
  for (const std::string* path : {&config.kernel, &config.initrd, &config.firmware, &config.bareProgram})
    if (!path->empty()) readOnly.push_back(*path);
  for (const auto& disk : config.disks) {  // a pool volume's PVs are held open; its registry file is not
    auto volume = storage::volume::parseVolumeDiskSpec(disk.path);
    if (storage::volume::isVolumeDiskSpec(disk.path) && volume) readOnly.push_back(storage::volume::poolRegistryPath(volume->pool));
  }
  if (!config.tapDevices.empty()) readWrite.push_back("/dev/net/tun");
}

Result<void> restrictFileAccess(const VmConfig& config) {
  int abi = landlockAbi();
  if (abi <= 0) {
    log::info("Landlock is not available on this host kernel; file access is not restricted beyond seccomp");
    return {};
  }
  landlock_ruleset_attr attributes{};
  attributes.handled_access_fs = handledRights(abi);
  UniqueFd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attributes, sizeof attributes, 0)));
  if (!ruleset.valid()) return errnoError("landlock_create_ruleset");
  if (auto added = addOpenFileRules(ruleset.get(), abi); !added) return added;
  std::vector<std::string> readOnly, readWrite;
  bootFiles(config, readOnly, readWrite);
  for (const auto& path : readOnly)
    if (auto added = addPathRule(ruleset.get(), path, kReadRights); !added) return added;
  for (const auto& path : readWrite)
    if (auto added = addPathRule(ruleset.get(), path, kReadRights | writeRights(abi)); !added) return added;
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) return errnoError("landlock_restrict_self");
  return {};
}

}  // namespace

const char* threadRoleName(ThreadRole role) {
  switch (role) {
    case ThreadRole::IoLoop: return "I/O loop";
    case ThreadRole::Vcpu: return "vCPU";
    case ThreadRole::Api: return "API";
    case ThreadRole::Migration: return "migration";
    case ThreadRole::Gdb: return "gdb";
  }
  return "unknown";
}

Result<void> enterThreadRole(ThreadRole role, const VmConfig& config) {
  if (inRole) return {};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errnoError("prctl(PR_SET_NO_NEW_PRIVS)");
  if (role == ThreadRole::IoLoop && config.sandbox.landlock) {
    if (auto restricted = restrictFileAccess(config); !restricted) return restricted;
  }
  if (config.sandbox.seccomp) {
    if (auto loaded = loadSeccompFilter(role, config); !loaded) return loaded;
  }
  currentRole = role;
  inRole = true;
  if (role == ThreadRole::Vcpu) {
    std::lock_guard lock(vcpuThreads.mutex);
    ++vcpuThreads.started;
    vcpuThreads.changed.notify_all();
  }
  return {};
}

void waitForVcpuThreads(unsigned count, std::chrono::milliseconds limit, const std::atomic<bool>& giveUp) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::unique_lock lock(vcpuThreads.mutex);
  while (vcpuThreads.started < count && !giveUp && std::chrono::steady_clock::now() < deadline)
    vcpuThreads.changed.wait_for(lock, std::chrono::milliseconds(5));
}

}  // namespace strata::vmm
