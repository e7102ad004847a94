// The qcow2 request path against images qemu-io wrote: reads that coalesce
// clusters contiguous on the host and split at the ones that are not (with a
// backing file underneath), many concurrent requests on a cold metadata cache
// smaller than the image's L2 tables (tables read asynchronously and evicted),
// and refcount updates at flush after a discard on a freshly opened image.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "storage/disk_image.h"
#include "storage/qcow2_image.h"
#include "storage/sync_io.h"
#include "disk_image_test.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::pattern;
using testing::readFile;
using testing::runCommand;
using testing::writeFile;

class Qcow2RequestPath : public DiskImageTest {
 protected:
  // What QEMU reads from the image, through its own qcow2 driver.
  std::vector<uint8_t> qemuView(const std::string& image) {
    std::string raw = dir.file("qemu-view.raw");
    auto result = runCommand("qemu-img convert -O raw " + image + " " + raw);
    EXPECT_EQ(result.exitCode, 0) << result.output;
    return readFile(raw);
  }
};

::testing::AssertionResult sameBytes(const uint8_t* got, const uint8_t* expected, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    if (got[i] != expected[i]) {
      return ::testing::AssertionFailure() << "first difference at byte " << i << " of " << length << ": got "
                                           << int(got[i]) << ", expected " << int(expected[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_F(Qcow2RequestPath, ReadAcrossContiguousAndScatteredHostClustersOverBacking) {
  constexpr uint64_t kSize = 1 << 20;
  std::string base = dir.file("base.raw");
  auto expected = pattern(kSize, 9);
  writeFile(base, expected);
  std::string image = dir.file("overlay.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=4096 -b base.raw -F raw " + image + " 1M");
  // Host order of allocation: guest clusters 0-3 (one run), 10, 5-6 (one run), 11.
  // Cluster 4 and 7 stay in the backing file, 8 is a zero cluster, 3 is
  // rewritten in place, 11 is partly written (the rest copied from the backing file).
  run("qemu-io -f qcow2 -c 'write -P 0x41 0 16k' -c 'write -P 0x42 40960 4096' -c 'write -P 0x43 20480 8192'"
      " -c 'write -z 32768 4096' -c 'write -P 0x44 12288 2048' -c 'write -P 0x45 45056 1000' " + image);
  std::memset(&expected[0], 0x41, 16384);
  std::memset(&expected[40960], 0x42, 4096);
  std::memset(&expected[20480], 0x43, 8192);
  std::memset(&expected[32768], 0, 4096);
  std::memset(&expected[12288], 0x44, 2048);
  std::memset(&expected[45056], 0x45, 1000);
  ASSERT_EQ(qemuView(image), expected);
  // The layout the test is about: qemu-img map merges host-contiguous clusters.
  auto map = runCommand("qemu-img map --output=json " + image);
  ASSERT_EQ(map.exitCode, 0) << map.output;
  EXPECT_NE(map.output.find("\"start\": 0, \"length\": 16384, \"depth\": 0"), std::string::npos) << map.output;
  EXPECT_NE(map.output.find("\"start\": 20480, \"length\": 8192, \"depth\": 0"), std::string::npos) << map.output;

  auto disk = open(image);
  ASSERT_TRUE(disk);
  // One request from inside cluster 0 to inside cluster 12, over uneven buffers.
  const uint64_t offset = 1000;
  const std::vector<size_t> pieces = {3000, 1, 20000, 4095, 7, 24897};
  std::vector<uint8_t> got(53000 - offset, 0xee);
  std::vector<iovec> buffers;
  size_t at = 0;
  for (size_t piece : pieces) {
    buffers.push_back(iovec{got.data() + at, piece});
    at += piece;
  }
  ASSERT_EQ(at, got.size());
  int status = runUntilComplete(*loop, [&](IoCompletion done) { disk->readv(offset, buffers, std::move(done)); });
  ASSERT_EQ(status, 0);
  EXPECT_TRUE(sameBytes(got.data(), expected.data() + offset, got.size()));

  std::vector<uint8_t> all(kSize);
  ASSERT_TRUE(readSync(*disk, *loop, 0, all.data(), all.size()).ok());
  EXPECT_TRUE(sameBytes(all.data(), expected.data(), kSize));
}

// Concurrent requests on a freshly opened image whose L2 tables do not fit the
// cache: every request starts with table reads, which complete while others
// are queued or in flight, and evict tables other requests loaded.
class Qcow2ColdCache : public Qcow2RequestPath, public ::testing::WithParamInterface<bool> {};

TEST_P(Qcow2ColdCache, ConcurrentRequestsMatchQemu) {
  const bool direct = GetParam();
  constexpr uint64_t kSize = 4 << 20;
  constexpr uint64_t kSector = 512;
  std::string image = dir.file("cold.qcow2");
  // 512-byte clusters: an L2 table covers 32 KiB, so the image has 128 of them.
  run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 4M");
  std::vector<uint8_t> expected(kSize, 0);
  std::string commands;
  for (int i = 99; i >= 0; --i) {  // backwards, so host order differs from guest order
    uint64_t at = static_cast<uint64_t>(i) * 40000;
    commands += " -c 'write -P " + std::to_string(0x10 + i) + " " + std::to_string(at) + " 30000'";
    std::memset(&expected[at], 0x10 + i, 30000);
  }
  run("qemu-io -f qcow2" + commands + " " + image);
  ASSERT_EQ(qemuView(image), expected);

  DiskOptions options;
  options.direct = direct;
  options.l2CacheBytes = 1;  // the minimum: 16 tables
  auto disk = open(image, options);
  ASSERT_TRUE(disk);

  std::mt19937_64 random(7);
  struct Request {
    uint64_t offset;
    std::unique_ptr<AlignedBuffer> buffer;
    int status = 1;
  };
  auto submitAll = [&](std::vector<Request>& requests, bool write) {
    for (auto& r : requests) {
      std::vector<iovec> iov{iovec{r.buffer->data(), r.buffer->size()}};
      auto done = [&r](int result) { r.status = result; };
      if (write) disk->writev(r.offset, std::move(iov), done);
      else disk->readv(r.offset, std::move(iov), done);
    }
    auto finished = [&] {
      return std::all_of(requests.begin(), requests.end(), [](const Request& r) { return r.status != 1; });
    };
    while (!finished()) loop->runOnce(-1);
  };

  // 64 reads at once, each over up to three L2 tables.
  std::vector<Request> reads(64);
  for (auto& r : reads) {
    r.offset = random() % (kSize / kSector - 160) * kSector;
    r.buffer = std::make_unique<AlignedBuffer>((1 + random() % 140) * kSector);
  }
  submitAll(reads, false);
  for (const auto& r : reads) {
    ASSERT_EQ(r.status, 0) << "read at " << r.offset;
    EXPECT_TRUE(sameBytes(r.buffer->data(), expected.data() + r.offset, r.buffer->size())) << "read at " << r.offset;
  }

  // 48 writes at once into disjoint 80 KiB slots: in place, into new clusters,
  // and into L2 ranges the image never used (new tables).
  std::vector<Request> writes(48);
  for (size_t i = 0; i < writes.size(); ++i) {
    auto& w = writes[i];
    w.offset = i * 81920 + random() % 80 * kSector;
    w.buffer = std::make_unique<AlignedBuffer>((1 + random() % 60) * kSector);
    auto bytes = pattern(w.buffer->size(), 100 + static_cast<uint32_t>(i));
    std::memcpy(w.buffer->data(), bytes.data(), bytes.size());
    std::memcpy(&expected[w.offset], bytes.data(), bytes.size());
  }
  submitAll(writes, true);
  for (const auto& w : writes) ASSERT_EQ(w.status, 0) << "write at " << w.offset;
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  disk.reset();

  auto check = runCommand("qemu-img check " + image);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  EXPECT_EQ(qemuView(image), expected);
}

INSTANTIATE_TEST_SUITE_P(BufferedAndDirect, Qcow2ColdCache, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Direct" : "Buffered"; });

TEST_F(Qcow2RequestPath, DiscardOnFreshlyOpenedImageReleasesClustersAtFlush) {
  constexpr uint64_t kSize = 2 << 20;
  std::string image = dir.file("discard.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 2M");
  run("qemu-io -f qcow2 -c 'write -P 0x5c 0 2M' " + image);
  std::vector<uint8_t> expected(kSize, 0x5c);
  {
    auto disk = open(image);
    ASSERT_TRUE(disk);
    // No refcount block is in memory yet: the flush reads them before dropping references.
    ASSERT_TRUE(discardSync(*disk, *loop, 512 << 10, 1 << 20).ok());
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
    std::fill(expected.begin() + (512 << 10), expected.begin() + (1536 << 10), 0);
    std::vector<uint8_t> all(kSize);
    ASSERT_TRUE(readSync(*disk, *loop, 0, all.data(), all.size()).ok());
    EXPECT_TRUE(sameBytes(all.data(), expected.data(), kSize));
  }
  // Exit 0: neither errors nor leaked clusters, so every released cluster's refcount reached 0.
  auto check = runCommand("qemu-img check " + image);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  EXPECT_EQ(qemuView(image), expected);
}

}  // namespace
}  // namespace strata::storage
