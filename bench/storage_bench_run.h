// storage_bench workloads: a fixed queue depth of asynchronous requests kept in
// flight through the BlockDevice interface (as virtio-blk drives it), the same
// request count through `qemu-img bench`, and the results as MiB/s and IOPS.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "storage/block_device.h"

namespace strata::bench {

struct Workload {
  std::string name;
  bool write = false;
  bool random = false;
  size_t blockSize = 4096;
  unsigned queueDepth = 1;
  uint64_t operations = 0;
};

// Tables show MiB/s for large requests and IOPS for small ones.
inline bool reportsMiBPerSecond(size_t blockSize) { return blockSize >= (64 << 10); }

struct Measured {
  double seconds = 0;
  uint64_t operations = 0;
  size_t blockSize = 0;
  int failures = 0;
  bool valid() const { return seconds > 0 && failures == 0; }
  double iops() const { return static_cast<double>(operations) / seconds; }
  double mibPerSecond() const { return static_cast<double>(operations * blockSize) / seconds / (1 << 20); }
  double headline() const { return reportsMiBPerSecond(blockSize) ? mibPerSecond() : iops(); }
};

// Ctrl-C / SIGTERM: workloads stop submitting, wait for what is in flight and
// report failure, so the bench unwinds and removes its files and devices.
void installStopHandler();
bool stopRequested();

// Runs w on device. afterSubmit (optional) runs right after each request is
// handed to the device, to sample what it fanned out. Like `qemu-img bench`,
// the timed part ends at the last completion; writes are flushed afterwards.
Measured runWorkload(storage::BlockDevice& device, EventLoop& loop, const Workload& w,
                     const std::function<void()>& afterSubmit = {});

// Writes the whole device in 1 MiB requests (so reads measure data, not holes) and flushes.
bool fillDevice(storage::BlockDevice& device, EventLoop& loop);

// Gives files the same page-cache state whatever wrote them: synced, evicted
// (POSIX_FADV_DONTNEED), then read back sequentially, the whole file (a qcow2's
// tables, a RAID 5 PV's parity too). The kernel caches a file in folios sized
// by the alignment of the writes that filled it: a raw file written in aligned
// 1 MiB requests gets large folios, a qcow2 whose data starts at an odd cluster
// small ones, and a 4 KiB buffered write dirties (and writes back) its whole
// folio, so the two would not be measured on equal terms. After this every
// file is cached the way readahead does it.
bool settlePageCache(const std::vector<std::string>& files);

// `qemu-img bench` on path for a sequential workload (it has no random
// pattern); direct selects cache=none. Failures yield an invalid Measured.
Measured qemuImgBench(const std::string& path, const std::string& format, const Workload& w, bool direct);

}  // namespace strata::bench
