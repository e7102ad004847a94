#include "storage_bench_run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <fmt/core.h>

#include "storage/sync_io.h"

namespace strata::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], FreeDeleter>;

// 4 KiB aligned, so the same buffers serve O_DIRECT devices.
AlignedBuffer alignedBuffer(size_t length, uint8_t fill) {
  size_t rounded = (length + 4095) & ~size_t{4095};
  auto p = static_cast<uint8_t*>(std::aligned_alloc(4096, rounded));
  if (!p) throw std::bad_alloc();
  std::memset(p, fill, rounded);
  return AlignedBuffer(p);
}

std::atomic<bool> stopFlag{false};

void onStopSignal(int) { stopFlag = true; }

}  // namespace

void installStopHandler() {
  struct sigaction action {};
  action.sa_handler = onStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: epoll_wait returns, the loop notices
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

bool stopRequested() { return stopFlag; }

Measured runWorkload(storage::BlockDevice& device, EventLoop& loop, const Workload& w,
                     const std::function<void()>& afterSubmit) {
  const uint64_t blocks = device.sizeBytes() / w.blockSize;
  std::vector<AlignedBuffer> buffers;
  for (unsigned slot = 0; slot < w.queueDepth; ++slot) buffers.push_back(alignedBuffer(w.blockSize, 0x5a));
  std::mt19937_64 random(42);
  uint64_t submitted = 0, completed = 0;
  int failures = 0;
  std::function<void(unsigned)> submit = [&](unsigned slot) {
    uint64_t block = w.random ? random() % blocks : submitted % blocks;
    ++submitted;
    std::vector<iovec> iov{{buffers[slot].get(), w.blockSize}};
    auto done = [&, slot](int result) {
      if (result < 0) ++failures;
      ++completed;
      if (submitted < w.operations && !stopRequested()) submit(slot);
    };
    if (w.write)
      device.writev(block * w.blockSize, std::move(iov), done);
    else
      device.readv(block * w.blockSize, std::move(iov), done);
    if (afterSubmit) afterSubmit();
  };
  auto start = Clock::now();
  for (unsigned slot = 0; slot < w.queueDepth && submitted < w.operations; ++slot) submit(slot);
  while (completed < submitted) loop.runOnce(-1);
  Measured m;
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  m.operations = w.operations;
  m.blockSize = w.blockSize;
  m.failures = failures + (submitted < w.operations ? 1 : 0);
  if (w.write && !storage::flushSync(device, loop)) ++m.failures;
  if (m.failures) std::fprintf(stderr, "warning: %d requests failed in %s\n", m.failures, w.name.c_str());
  return m;
}

bool fillDevice(storage::BlockDevice& device, EventLoop& loop) {
  uint64_t mib = device.sizeBytes() >> 20;
  return runWorkload(device, loop, {"fill", true, false, 1 << 20, 4, mib}).valid();
}

bool settlePageCache(const std::vector<std::string>& files) {
  std::vector<uint8_t> chunk(1 << 20);
  for (const auto& file : files) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::fdatasync(fd) == 0 && ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
    for (ssize_t got = 1; ok && got > 0;) {
      got = ::read(fd, chunk.data(), chunk.size());
      ok = got >= 0;
    }
    ::close(fd);
    if (!ok) return false;
  }
  return true;
}

Measured qemuImgBench(const std::string& path, const std::string& format, const Workload& w, bool direct) {
  Measured m{0, w.operations, w.blockSize, 0};
  if (w.random) return m;
  std::string command = fmt::format("qemu-img bench -f {} {} -c {} -d {} -s {} {} '{}' 2>&1", format,
                                    direct ? "-t none" : "", w.operations, w.queueDepth, w.blockSize,
                                    w.write ? "-w" : "", path);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return m;
  char line[512];
  double seconds = 0;
  while (std::fgets(line, sizeof line, pipe)) std::sscanf(line, "Run completed in %lf seconds", &seconds);
  if (::pclose(pipe) != 0) seconds = 0;
  m.seconds = seconds;
  return m;
}

}  // namespace strata::bench
