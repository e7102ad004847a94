// storage_bench --throttle-mbps: PV files attached as loop devices, each
// limited to the same bandwidth by the blkio cgroup's throttle (root only).
// On a machine with one disk this emulates independent devices, so striped
// scaling shows whether the volume code keeps every PV busy at once.
// Everything attached is detached and unthrottled again on destruction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace strata::bench {

class ThrottledLoops {
 public:
  explicit ThrottledLoops(uint64_t bytesPerSecond) : bytesPerSecond_(bytesPerSecond) {}
  ~ThrottledLoops();
  ThrottledLoops(const ThrottledLoops&) = delete;
  ThrottledLoops& operator=(const ThrottledLoops&) = delete;

  // Attaches file (direct I/O to it) and throttles reads and writes; returns /dev/loopN.
  Result<std::string> attach(const std::string& file);

 private:
  struct Loop {
    std::string device;
    std::string majorMinor;
  };
  uint64_t bytesPerSecond_;
  std::vector<Loop> loops_;
};

}  // namespace strata::bench
