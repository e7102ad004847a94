// Shared fixtures for the volume manager tests: a temporary directory of
// sparse PV files, an event loop, a pool registry pointed into the temp dir,
// and deterministic data patterns to compare byte for byte.
#pragma once

#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "storage/sync_io.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume::testing {

constexpr uint64_t kMiB = 1 << 20;

inline std::vector<uint8_t> pattern(size_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < length; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    bytes[i] = static_cast<uint8_t>(x);
  }
  return bytes;
}

// Bytes the process's heap holds (small blocks and mmapped large ones).
inline size_t heapInUse() {
  struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
}

struct MeasuredRequest {
  int result = 1;
  size_t peakHeapGrowth = 0;  // over the heap before the submission
};
// Submits one request and runs the loop until it completes, sampling the heap
// after the submission and after every loop iteration.
inline MeasuredRequest runMeasuringHeap(EventLoop& loop, const std::function<void(IoCompletion)>& submit) {
  MeasuredRequest measured;
  bool finished = false;
  const size_t base = heapInUse();
  auto sample = [&] {
    size_t now = heapInUse();
    if (now > base) measured.peakHeapGrowth = std::max(measured.peakHeapGrowth, now - base);
  };
  submit([&](int result) {
    measured.result = result;
    finished = true;
  });
  sample();
  while (!finished) {
    loop.runOnce(-1);
    sample();
  }
  return measured;
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/strata-volume-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir = templ;
    ::setenv("STRATA_POOL_DIR", (dir + "/registry").c_str(), 1);
    loop = std::move(*EventLoop::create());
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // A sparse PV file of `megabytes` MiB.
  std::string makePv(const std::string& name, uint64_t megabytes) {
    std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    EXPECT_NE(f, nullptr);
    if (f) std::fclose(f);
    EXPECT_EQ(::truncate(path.c_str(), static_cast<off_t>(megabytes * kMiB)), 0);
    return path;
  }
  std::vector<std::string> makePvs(int count, uint64_t megabytes, const std::string& prefix = "pv") {
    std::vector<std::string> paths;
    for (int i = 0; i < count; ++i) paths.push_back(makePv(prefix + std::to_string(i), megabytes));
    return paths;
  }

  // 1 MiB extents keep the files small; 4 MiB write-intent regions give
  // small volumes several.
  std::shared_ptr<Pool> createPool(const std::vector<std::string>& pvs, uint64_t extentSize = kMiB) {
    auto pool = Pool::create("tank", pvs, {.extentSize = extentSize, .intentRegionBytes = 4 * kMiB}, *loop);
    EXPECT_TRUE(pool.ok()) << (pool.ok() ? "" : pool.error().message);
    return pool.ok() ? *pool : nullptr;
  }
  std::shared_ptr<Pool> openPool(const std::vector<std::string>& pvs, bool readOnly = false) {
    auto pool = Pool::open(pvs, {.readOnly = readOnly}, *loop);
    EXPECT_TRUE(pool.ok()) << (pool.ok() ? "" : pool.error().message);
    return pool.ok() ? *pool : nullptr;
  }
  std::unique_ptr<BlockDevice> openVolume(Pool& pool, const std::string& name) {
    auto device = pool.openVolume(name);
    EXPECT_TRUE(device.ok()) << (device.ok() ? "" : device.error().message);
    return device.ok() ? std::move(*device) : nullptr;
  }

  void writeAt(BlockDevice& device, uint64_t offset, const std::vector<uint8_t>& data) {
    auto r = writeSync(device, *loop, offset, data.data(), data.size());
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  std::vector<uint8_t> readAt(BlockDevice& device, uint64_t offset, size_t length) {
    std::vector<uint8_t> data(length);
    auto r = readSync(device, *loop, offset, data.data(), length);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return data;
  }
  void flush(BlockDevice& device) {
    auto r = flushSync(device, *loop);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  // Overwrites bytes of a file (to corrupt metadata on purpose).
  void pokeFile(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(offset), SEEK_SET);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  std::vector<uint8_t> peekFile(const std::string& path, uint64_t offset, size_t length) {
    std::vector<uint8_t> bytes(length);
    FILE* f = std::fopen(path.c_str(), "rb");
    EXPECT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(offset), SEEK_SET);
    EXPECT_EQ(std::fread(bytes.data(), 1, length, f), length);
    std::fclose(f);
    return bytes;
  }

  std::string dir;
  std::unique_ptr<EventLoop> loop;
};

}  // namespace strata::storage::volume::testing
