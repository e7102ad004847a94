#include "storage_bench_loops.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>

#include <fmt/core.h>

namespace strata::bench {

namespace {

constexpr const char* kThrottleFiles[] = {"/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device",
                                          "/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device"};

// Writes one "MAJ:MIN BYTES" rule (0 removes it) to both throttle files.
bool setThrottle(const std::string& majorMinor, uint64_t bytesPerSecond) {
  bool ok = true;
  for (const char* file : kThrottleFiles) {
    std::ofstream out(file);
    out << majorMinor << " " << bytesPerSecond << "\n";
    out.flush();
    ok = ok && out.good();
  }
  return ok;
}

std::string run(const std::string& command, int* status) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) {
    *status = -1;
    return output;
  }
  char line[256];
  while (std::fgets(line, sizeof line, pipe)) output += line;
  *status = ::pclose(pipe);
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  return output;
}

}  // namespace

Result<std::string> ThrottledLoops::attach(const std::string& file) {
  int status = 0;
  std::string device = run(fmt::format("losetup --show -f --direct-io=on '{}' 2>&1", file), &status);
  if (status != 0 || device.rfind("/dev/loop", 0) != 0)
    return Error{fmt::format("losetup {}: {} (--throttle-mbps needs root and loop devices)", file, device)};
  struct stat st {};
  if (::stat(device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) return errnoError(device);
  Loop loop{device, fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev))};
  loops_.push_back(loop);  // detached again even if throttling fails
  if (!setThrottle(loop.majorMinor, bytesPerSecond_))
    return Error{fmt::format("cannot throttle {} via {} (needs root and the cgroup v1 blkio controller)", device,
                             kThrottleFiles[0])};
  return device;
}

ThrottledLoops::~ThrottledLoops() {
  for (const auto& loop : loops_) {
    setThrottle(loop.majorMinor, 0);
    int status = 0;
    run(fmt::format("losetup -d '{}' 2>&1", loop.device), &status);
    if (status != 0) std::fprintf(stderr, "warning: could not detach %s\n", loop.device.c_str());
  }
}

}  // namespace strata::bench
