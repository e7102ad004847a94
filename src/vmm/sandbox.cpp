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
#include <vector>

#include <fmt/core.h>

#include "base/log.h"
#include "base/unique_fd.h"
#include "storage/volume/volume_disk.h"
#include "vmm/seccomp_program.h"
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
constexpr int kVcpu[] = {
    SYS_write, SYS_writev, SYS_futex, SYS_sched_yield, SYS_clock_gettime,
    SYS_sendto,  // console output to a --console-socket client (send, never blocking)
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_getpid, SYS_gettid,
    // PUT /vm/snapshot writes the paused VM's state and memory files (GuestMachine::saveSnapshot;
    // lseek finds the RAM memfd's holes).
    SYS_openat, SYS_pwrite64, SYS_ftruncate, SYS_fsync, SYS_rename, SYS_renameat, SYS_renameat2, SYS_mkdir, SYS_mkdirat, SYS_lseek,
    // glibc's qsort asks for the memory size once per process, at its first sort of 1 KiB or more:
    // capstone sorts a register table at its first disassembly, in the vCPU thread that traces
    // (--engine-trace). OpenSSL's initialiser used to sort first, when every process loaded it.
    SYS_sysinfo,
};

// The main thread, beyond the vCPU list: the event loop over disks (io_uring),
// TAP, console and timers, and everything building a new board after a guest
// reboot needs (guest RAM memfd, reopening kernel, initrd and disks, which
// Landlock limits to the VM's own files, starting vCPU threads).
constexpr int kIoLoopExtra[] = {
    SYS_read, SYS_readv, SYS_close, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait, SYS_epoll_pwait, SYS_eventfd2,
    SYS_timerfd_create, SYS_timerfd_settime, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_openat, SYS_newfstatat, SYS_fstat, SYS_lseek, SYS_pread64, SYS_pwrite64, SYS_pwritev2, SYS_fsync, SYS_fdatasync,
    SYS_fallocate, SYS_ftruncate, SYS_fcntl, SYS_flock, SYS_readlink, SYS_memfd_create, SYS_getrandom,
    SYS_sendto, SYS_recvfrom,       // frames to and from a `strata switch` port (send/recv with flags)
    SYS_accept4,                  // a --console-socket client
    SYS_rseq, SYS_set_robust_list,  // a new thread's first calls, made before it enters its own role
    SYS_rt_sigaction,             // glibc sets up its thread-control signal at the first pthread_create
};

// The API thread: accepting and serving its socket's clients (httplib reads
// and writes with recv/send, waits with poll or select, sets timeouts with
// setsockopt), glibc's allocator, locks and clocks, and, last, unlinking its
// socket file (an argument rule below: that path only). Control operations
// reach the VM through VmControl's locks and the event loop's eventfd (write).
constexpr int kApi[] = {
    SYS_accept, SYS_accept4, SYS_read, SYS_recvfrom, SYS_write, SYS_writev, SYS_sendto, SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6,
    SYS_close, SYS_shutdown, SYS_setsockopt, SYS_getsockopt, SYS_getsockname, SYS_getpeername, SYS_fcntl,
    SYS_futex, SYS_sched_yield, SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep,
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_getpid, SYS_gettid,
    // PUT /vm/snapshot writes the paused VM's state and memory files (GuestMachine::saveSnapshot;
    // lseek finds the RAM memfd's holes) and creates each disk image's overlay, which the I/O
    // loop, whose Landlock rules admit no new file, opens from the descriptor (LiveDisk::addOverlay).
    SYS_openat, SYS_pwrite64, SYS_ftruncate, SYS_fsync, SYS_rename, SYS_renameat, SYS_renameat2, SYS_mkdir, SYS_mkdirat, SYS_lseek,
    // GET /vm and /vm/stats read /proc/self/ksm_merging_pages through the fd PageSharingReport holds.
    SYS_pread64,
    // PUT /vm/migrate with "tls_ca" loads the CA file (GnuTLS checks it, opens and sizes it); the first
    // such request loads the TLS module (storage/tls_module.h: readlink finds it beside the executable,
    // then openat, pread64, mmap, mprotect), and GnuTLS starting reads its config file and seeds its
    // generator from getrandom.
    SYS_access, SYS_faccessat, SYS_faccessat2, SYS_fstat, SYS_newfstatat, SYS_getrandom, SYS_readlink,
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
constexpr int kMigration[] = {
    SYS_connect, SYS_setsockopt, SYS_getsockopt, SYS_sendto, SYS_recvfrom, SYS_read, SYS_write, SYS_poll, SYS_ppoll, SYS_close,
    SYS_shutdown, SYS_lseek, SYS_futex, SYS_sched_yield, SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep,
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_getpid, SYS_gettid,
    SYS_socketpair, SYS_getrandom, SYS_rseq, SYS_set_robust_list,
};

// The GDB stub's thread: accepting and serving one TCP client (recv, send,
// poll, socket options), its eventfd, glibc's allocator, locks and clocks. It
// reaches the VM through VmControl (locks, the event loop's eventfd) and reads
// guest memory directly; vCPU threads do the stepping.
constexpr int kGdb[] = {
    SYS_accept, SYS_accept4, SYS_read, SYS_recvfrom, SYS_write, SYS_writev, SYS_sendto, SYS_poll, SYS_ppoll,
    SYS_close, SYS_shutdown, SYS_setsockopt, SYS_getsockopt, SYS_getsockname, SYS_getpeername, SYS_fcntl,
    SYS_futex, SYS_sched_yield, SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep,
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_restart_syscall, SYS_exit, SYS_exit_group, SYS_getpid, SYS_gettid,
};

// The name of syscall `number`, or "?": from a table generated from the kernel
// headers (syscall_names.h), as the handler may not allocate.
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

// Rules that look at arguments: only the kinds of call the role really makes.
void addArgumentRules(seccomp::ProgramBuilder& program, ThreadRole role, const VmConfig& config) {
  auto equals = [](unsigned index, uint64_t value) { return seccomp::ArgumentCheck{index, ~uint64_t{0}, value}; };
  // Signals only to this process's own threads (the SIGSYS handler, abort()).
  program.allowIf(SYS_tgkill, equals(0, static_cast<uint64_t>(::getpid())));
  // Roles that open no file: glibc still opens /proc/sys/vm/overcommit_memory the first time
  // it shrinks a thread's heap (a migration's channel buffers freed); refused, it uses madvise.
  if (role == ThreadRole::Migration || role == ThreadRole::Gdb) program.answer(SYS_openat, seccomp::errnoAction(EACCES));
  if (role == ThreadRole::Vcpu || role == ThreadRole::Gdb) return;
  // The I/O loop and migration start threads, never processes: glibc tries
  // clone3 first, whose flags sit behind a pointer the filter cannot read, so it
  // answers ENOSYS and glibc falls back to clone, whose flags it can. Threads
  // they start (vCPUs, TLS relays) add their own filter on top of this one.
  if (role == ThreadRole::IoLoop || role == ThreadRole::Migration) {
    program.answer(SYS_clone3, seccomp::errnoAction(ENOSYS));
    program.allowIf(SYS_clone, {0, CLONE_THREAD, CLONE_THREAD});
    program.allowIf(SYS_prctl, equals(0, PR_SET_NO_NEW_PRIVS));
    program.allowIf(SYS_seccomp, equals(0, SECCOMP_SET_MODE_FILTER));
  }
  if (role == ThreadRole::Migration) {
    for (unsigned long request : {UFFDIO_COPY, UFFDIO_WAKE, UFFDIO_UNREGISTER}) program.allowIf(SYS_ioctl, equals(1, request));
    program.allowIf(SYS_socket, equals(0, AF_INET));
    return;
  }
  if (role == ThreadRole::Api) {
    // The pointer compared is config.apiSocket's buffer, the one ApiServer passes.
    const auto socketPath = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(config.apiSocket.c_str()));
    program.allowIf(SYS_unlink, equals(0, socketPath));
    program.allowIf(SYS_unlinkat, equals(1, socketPath));
    return;
  }
  // ioctl: attaching a TAP interface (by name or a handed-over fd) and its offloads, the
  // console's terminal modes, and a host block device's size (a disk reopened).
  for (unsigned long request : {static_cast<unsigned long>(TUNSETIFF), static_cast<unsigned long>(TUNGETIFF),
                                static_cast<unsigned long>(TUNSETOFFLOAD), static_cast<unsigned long>(TCGETS),
                                static_cast<unsigned long>(TCSETS), static_cast<unsigned long>(BLKGETSIZE64)})
    program.allowIf(SYS_ioctl, equals(1, request));
}

// The role's program: its list, then its argument rules; anything else traps.
Result<std::vector<sock_filter>> seccompProgram(ThreadRole role, const VmConfig& config) {
  seccomp::ProgramBuilder program;
  auto allowEach = [&](const auto& syscalls) {
    for (int syscall : syscalls) program.allow(syscall);
  };
  switch (role) {
    case ThreadRole::Api: allowEach(kApi); break;
    case ThreadRole::Migration: allowEach(kMigration); break;
    case ThreadRole::Gdb: allowEach(kGdb); break;
    case ThreadRole::Vcpu: allowEach(kVcpu); break;
    case ThreadRole::IoLoop:
      allowEach(kVcpu);
      allowEach(kIoLoopExtra);
      break;
  }
  addArgumentRules(program, role, config);
  return program.build(seccomp::trapAction());
}

// The vCPU threads' program, assembled by the I/O loop's thread as it enters its
// role (it creates them), so that a vCPU thread allocates nothing before its guest
// runs: its first allocation would make it a malloc arena (~0.2 ms). Kept per
// process, as the tgkill rule names the process: a forked clone assembles its own.
struct VcpuProgram {
  std::mutex mutex;
  pid_t pid = 0;
  std::vector<sock_filter> instructions;
} vcpuProgram;

void prepareVcpuProgram(const VmConfig& config) {
  auto program = seccompProgram(ThreadRole::Vcpu, config);
  if (!program) return;  // each vCPU thread then assembles its own and reports why it cannot
  std::lock_guard lock(vcpuProgram.mutex);
  vcpuProgram.pid = ::getpid();
  vcpuProgram.instructions = std::move(*program);
}

// The prepared vCPU program, or null. It is never changed once this process's vCPU threads exist.
const std::vector<sock_filter>* preparedVcpuProgram() {
  std::lock_guard lock(vcpuProgram.mutex);
  return vcpuProgram.pid == ::getpid() ? &vcpuProgram.instructions : nullptr;
}

Result<void> loadSeccompFilter(ThreadRole role, const VmConfig& config) {
  if (auto installed = installSigsysHandler(); !installed) return installed;
  if (role == ThreadRole::IoLoop) prepareVcpuProgram(config);
  if (role == ThreadRole::Vcpu)
    if (const auto* prepared = preparedVcpuProgram()) return seccomp::load(*prepared);
  auto program = seccompProgram(role, config);
  if (!program) return program.error();
  return seccomp::load(*program);
}

}  // namespace

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
