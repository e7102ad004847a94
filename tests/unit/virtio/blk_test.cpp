// virtio-blk requests built by hand, served against a real temporary file.
#include <fcntl.h>
#include <linux/falloc.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "storage/block_device.h"
#include "storage/raw_image.h"
#include "virtio/blk.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

// A synchronous file-backed BlockDevice that completes on the EventLoop, or
// holds completions back so tests can control their order.
class FileBlockDevice : public storage::BlockDevice {
 public:
  FileBlockDevice(EventLoop& loop, uint64_t size, bool readOnly = false, std::string serial = "strata-test-serial-0001")
      : loop_(loop), size_(size), readOnly_(readOnly), serial_(std::move(serial)) {
    char path[] = "/tmp/strata-virtio-blk-XXXXXX";
    fd_ = ::mkstemp(path);
    ::unlink(path);
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~FileBlockDevice() override { ::close(fd_); }

  uint64_t sizeBytes() const override { return size_; }
  bool readOnly() const override { return readOnly_; }
  std::string serial() const override { return serial_; }

  void readv(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) override {
    if (slowReads) {
      // The data lands in the buffers only when the test finishes the read, as with a slow disk.
      slowReadsWaiting.push_back([this, offset, buffers = std::move(buffers), done = std::move(done)] {
        ssize_t n = ::preadv(fd_, buffers.data(), static_cast<int>(buffers.size()), static_cast<off_t>(offset));
        done(n < 0 ? -errno : 0);
      });
      ++slowReadsStarted;
      return;
    }
    ssize_t n = ::preadv(fd_, buffers.data(), static_cast<int>(buffers.size()), static_cast<off_t>(offset));
    finish(std::move(done), n < 0 ? -errno : 0);
  }
  void writev(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) override {
    ssize_t n = ::pwritev(fd_, buffers.data(), static_cast<int>(buffers.size()), static_cast<off_t>(offset));
    finish(std::move(done), n < 0 ? -errno : 0);
  }
  void flush(storage::IoCompletion done) override {
    ++flushes;
    finish(std::move(done), ::fdatasync(fd_) == 0 ? 0 : -errno);
  }
  void discard(uint64_t offset, uint64_t length, storage::IoCompletion done) override {
    discards.push_back({offset, length});
    int r = ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                        static_cast<off_t>(length));
    finish(std::move(done), r == 0 ? 0 : -errno);
  }
  void writeZeroes(uint64_t offset, uint64_t length, storage::IoCompletion done) override {
    zeroes.push_back({offset, length});
    std::vector<uint8_t> zero(length, 0);
    ssize_t n = ::pwrite(fd_, zero.data(), zero.size(), static_cast<off_t>(offset));
    finish(std::move(done), n < 0 ? -errno : 0);
  }

  void writeFile(uint64_t offset, const std::vector<uint8_t>& data) {
    ASSERT_EQ(::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(data.size()));
  }
  std::vector<uint8_t> readFile(uint64_t offset, size_t len) {
    std::vector<uint8_t> data(len);
    EXPECT_EQ(::pread(fd_, data.data(), len, static_cast<off_t>(offset)), static_cast<ssize_t>(len));
    return data;
  }
  void completeDeferred(size_t index) {
    auto done = std::move(deferred.at(index));
    deferred.at(index) = nullptr;
    done();
  }

  bool deferCompletions = false;
  bool slowReads = false;  // set before the loop runs
  std::vector<std::function<void()>> slowReadsWaiting;  // loop thread only
  std::atomic<int> slowReadsStarted{0};
  std::vector<std::function<void()>> deferred;
  int flushes = 0;
  std::vector<std::pair<uint64_t, uint64_t>> discards;
  std::vector<std::pair<uint64_t, uint64_t>> zeroes;

 private:
  void finish(storage::IoCompletion done, int result) {
    auto run = [done = std::move(done), result] { done(result); };
    if (deferCompletions) deferred.push_back(run);
    else loop_.post(run);
  }
  EventLoop& loop_;
  uint64_t size_;
  bool readOnly_;
  std::string serial_;
  int fd_ = -1;
};

constexpr uint64_t kDiskBytes = 64 * 512;
constexpr uint64_t kHeaderGpa = kDataArea;
constexpr uint64_t kStatusGpa = kDataArea + 0x100;
constexpr uint64_t kBufferGpa = kDataArea + 0x1000;

std::vector<uint8_t> pattern(size_t len, uint8_t seed) {
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(seed + i * 7);
  return data;
}

class VirtioBlkTest : public ::testing::Test {
 protected:
  void startDevice(bool readOnly = false) {
    disk = std::make_unique<FileBlockDevice>(d.loop(), kDiskBytes, readOnly);
    blk = std::make_unique<VirtioBlk>(*disk);
    d.attach(*blk);
    d.start(featureBit(blk::kFeatureFlush), {64});
  }

  void writeHeader(uint64_t gpa, uint32_t type, uint64_t sector) {
    uint8_t header[16] = {};
    std::memcpy(header, &type, 4);
    std::memcpy(header + 8, &sector, 8);
    d.fill(gpa, header, sizeof header);
  }

  // header | data (direction per request type) | status, each in its own descriptor.
  uint16_t submit(uint32_t type, uint64_t sector, uint32_t dataLen, bool dataWritable, uint64_t statusGpa = kStatusGpa,
                  uint64_t headerGpa = kHeaderGpa, uint64_t bufferGpa = kBufferGpa) {
    writeHeader(headerGpa, type, sector);
    *d.host(statusGpa, 1) = 0xff;
    std::vector<Buffer> chain{{headerGpa, 16, false}};
    if (dataLen) chain.push_back({bufferGpa, dataLen, dataWritable});
    chain.push_back({statusGpa, 1, true});
    uint16_t head = d.addChain(0, chain);
    d.kick(0);
    return head;
  }

  // Runs a request to completion and returns its status byte.
  uint8_t run(uint32_t type, uint64_t sector, uint32_t dataLen, bool dataWritable) {
    uint16_t expected = static_cast<uint16_t>(d.usedIdx(0) + 1);
    submit(type, sector, dataLen, dataWritable);
    EXPECT_TRUE(d.waitUsed(0, expected));
    return *d.host(kStatusGpa, 1);
  }

  struct Segment {
    uint64_t sector;
    uint32_t numSectors;
    uint32_t flags;
  };
  uint8_t runSegments(uint32_t type, const std::vector<Segment>& segments) {
    d.fill(kBufferGpa, segments.data(), segments.size() * sizeof(Segment));
    return run(type, 0, static_cast<uint32_t>(segments.size() * sizeof(Segment)), false);
  }

  TestDriver d;
  std::unique_ptr<FileBlockDevice> disk;
  std::unique_ptr<VirtioBlk> blk;
};

TEST_F(VirtioBlkTest, ConfigSpaceAndFeatures) {
  startDevice();
  EXPECT_EQ(d.reg(mmio::kDeviceId), 2u);
  EXPECT_EQ(d.transport().read(mmio::kConfig + 0, 8), 64u);  // capacity in sectors
  EXPECT_EQ(d.reg(mmio::kConfig + 12), 254u);                // seg_max
  EXPECT_EQ(d.reg(mmio::kConfig + 20), 512u);                // blk_size
  EXPECT_EQ(d.reg(mmio::kConfig + 40), blk::kMaxDiscardSegments);
  EXPECT_EQ(d.transport().read(mmio::kConfig + 56, 1), 1u);  // write_zeroes_may_unmap
  uint64_t f = d.deviceFeatures();
  EXPECT_TRUE(f & featureBit(blk::kFeatureFlush));
  EXPECT_TRUE(f & featureBit(blk::kFeatureDiscard));
  EXPECT_TRUE(f & featureBit(blk::kFeatureWriteZeroes));
  EXPECT_TRUE(f & featureBit(blk::kFeatureSegMax));
  EXPECT_TRUE(f & featureBit(blk::kFeatureBlockSize));
  EXPECT_FALSE(f & featureBit(blk::kFeatureReadOnly));
}

TEST_F(VirtioBlkTest, ReadsSectors) {
  startDevice();
  auto data = pattern(1024, 3);
  disk->writeFile(3 * 512, data);
  EXPECT_EQ(run(blk::kTypeIn, 3, 1024, true), blk::kStatusOk);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa, 1024), data.data(), 1024), 0);
  EXPECT_EQ(d.used(0, 0).len, 1025u);  // data plus status byte
}

TEST_F(VirtioBlkTest, WritesSectors) {
  startDevice();
  auto data = pattern(1536, 9);
  d.fill(kBufferGpa, data.data(), data.size());
  EXPECT_EQ(run(blk::kTypeOut, 5, 1536, false), blk::kStatusOk);
  EXPECT_EQ(disk->readFile(5 * 512, 1536), data);
  EXPECT_EQ(disk->readFile(4 * 512, 512), std::vector<uint8_t>(512, 0));
  EXPECT_EQ(d.used(0, 0).len, 1u);
}

TEST_F(VirtioBlkTest, WriteThenReadLastSector) {
  startDevice();
  auto data = pattern(512, 77);
  d.fill(kBufferGpa, data.data(), 512);
  EXPECT_EQ(run(blk::kTypeOut, 63, 512, false), blk::kStatusOk);
  std::memset(d.host(kBufferGpa, 512), 0, 512);
  EXPECT_EQ(run(blk::kTypeIn, 63, 512, true), blk::kStatusOk);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa, 512), data.data(), 512), 0);
}

TEST_F(VirtioBlkTest, Flush) {
  startDevice();
  EXPECT_EQ(run(blk::kTypeFlush, 0, 0, false), blk::kStatusOk);
  EXPECT_EQ(disk->flushes, 1);
}

TEST_F(VirtioBlkTest, GetIdReturns20ByteSerial) {
  startDevice();
  std::memset(d.host(kBufferGpa, 32), 0xee, 32);
  EXPECT_EQ(run(blk::kTypeGetId, 0, 20, true), blk::kStatusOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(d.host(kBufferGpa, 20)), 20), "strata-test-serial-0");
  EXPECT_EQ(*d.host(kBufferGpa + 20, 1), 0xee);  // nothing past the 20 bytes
  EXPECT_EQ(d.used(0, 0).len, 21u);
}

TEST_F(VirtioBlkTest, DiscardPunchesEverySegment) {
  startDevice();
  disk->writeFile(0, pattern(kDiskBytes, 1));
  EXPECT_EQ(runSegments(blk::kTypeDiscard, {{8, 8, 0}, {32, 16, 0}}), blk::kStatusOk);
  ASSERT_EQ(disk->discards.size(), 2u);
  EXPECT_EQ(disk->discards[0], (std::pair<uint64_t, uint64_t>{8 * 512, 8 * 512}));
  EXPECT_EQ(disk->discards[1], (std::pair<uint64_t, uint64_t>{32 * 512, 16 * 512}));
  EXPECT_EQ(disk->readFile(8 * 512, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
  EXPECT_EQ(disk->readFile(0, 512), pattern(512, 1));
}

TEST_F(VirtioBlkTest, WriteZeroesWithUnmapIsAllowed) {
  startDevice();
  disk->writeFile(0, pattern(kDiskBytes, 1));
  EXPECT_EQ(runSegments(blk::kTypeWriteZeroes, {{2, 3, blk::kSegmentFlagUnmap}}), blk::kStatusOk);
  EXPECT_EQ(disk->readFile(2 * 512, 3 * 512), std::vector<uint8_t>(3 * 512, 0));
  auto around = pattern(kDiskBytes, 1);
  EXPECT_EQ(disk->readFile(512, 512), std::vector<uint8_t>(around.begin() + 512, around.begin() + 1024));
  EXPECT_EQ(disk->readFile(5 * 512, 512), std::vector<uint8_t>(around.begin() + 5 * 512, around.begin() + 6 * 512));
}

TEST_F(VirtioBlkTest, DiscardFlagsAreChecked) {
  startDevice();
  EXPECT_EQ(runSegments(blk::kTypeDiscard, {{0, 8, blk::kSegmentFlagUnmap}}), blk::kStatusUnsupported);
  EXPECT_EQ(runSegments(blk::kTypeWriteZeroes, {{0, 8, 0x4}}), blk::kStatusUnsupported);
  EXPECT_TRUE(disk->discards.empty());
  EXPECT_TRUE(disk->zeroes.empty());
}

TEST_F(VirtioBlkTest, DiscardRangesAreChecked) {
  startDevice();
  EXPECT_EQ(runSegments(blk::kTypeDiscard, {{0, 8, 0}, {60, 8, 0}}), blk::kStatusIoError);  // second runs past the end
  EXPECT_EQ(runSegments(blk::kTypeWriteZeroes, {{~0ull / 2, 1, 0}}), blk::kStatusIoError);
  EXPECT_EQ(runSegments(blk::kTypeDiscard, {{0, blk::kMaxDiscardSectors + 1, 0}}), blk::kStatusIoError);
  EXPECT_TRUE(disk->discards.empty());
  // A segment list that is not a whole number of 16-byte segments.
  EXPECT_EQ(run(blk::kTypeDiscard, 0, 20, false), blk::kStatusIoError);
}

TEST_F(VirtioBlkTest, OutOfRangeIsIoError) {
  startDevice();
  EXPECT_EQ(run(blk::kTypeIn, 63, 1024, true), blk::kStatusIoError);
  EXPECT_EQ(run(blk::kTypeOut, 64, 512, false), blk::kStatusIoError);
  // sector * 512 would overflow 64 bits.
  EXPECT_EQ(run(blk::kTypeIn, 0x0100000000000000ull, 512, true), blk::kStatusIoError);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(VirtioBlkTest, PartialSectorIsIoError) {
  startDevice();
  EXPECT_EQ(run(blk::kTypeIn, 0, 100, true), blk::kStatusIoError);
  EXPECT_EQ(run(blk::kTypeOut, 0, 513, false), blk::kStatusIoError);
}

TEST_F(VirtioBlkTest, UnknownTypeIsUnsupported) {
  startDevice();
  EXPECT_EQ(run(99, 0, 512, true), blk::kStatusUnsupported);
  EXPECT_EQ(run(14 /* SECURE_ERASE, not offered */, 0, 16, false), blk::kStatusUnsupported);
}

TEST_F(VirtioBlkTest, ShortHeaderIsIoError) {
  startDevice();
  *d.host(kStatusGpa, 1) = 0xff;
  d.addChain(0, {{kHeaderGpa, 8, false}, {kStatusGpa, 1, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(*d.host(kStatusGpa, 1), blk::kStatusIoError);
}

TEST_F(VirtioBlkTest, ReadOnlyDiskRefusesWrites) {
  startDevice(/*readOnly=*/true);
  uint64_t f = d.deviceFeatures();
  EXPECT_TRUE(f & featureBit(blk::kFeatureReadOnly));
  EXPECT_FALSE(f & featureBit(blk::kFeatureDiscard));
  d.fill(kBufferGpa, pattern(512, 5).data(), 512);
  EXPECT_EQ(run(blk::kTypeOut, 0, 512, false), blk::kStatusIoError);
  EXPECT_EQ(disk->readFile(0, 512), std::vector<uint8_t>(512, 0));
  EXPECT_EQ(runSegments(blk::kTypeWriteZeroes, {{0, 1, 0}}), blk::kStatusIoError);
  EXPECT_EQ(run(blk::kTypeIn, 0, 512, true), blk::kStatusOk);
}

TEST_F(VirtioBlkTest, AnyDescriptorLayout) {
  startDevice();
  auto data = pattern(1024, 42);
  disk->writeFile(10 * 512, data);
  // Header split 5+11 bytes, data split 100+800+124, data and status sharing the last descriptor.
  writeHeader(kHeaderGpa, blk::kTypeIn, 10);
  std::memset(d.host(kBufferGpa, 0x2000), 0, 0x2000);
  d.addChain(0, {{kHeaderGpa, 5, false},
                 {kHeaderGpa + 5, 11, false},
                 {kBufferGpa, 100, true},
                 {kBufferGpa + 0x400, 800, true},
                 {kBufferGpa + 0x800, 125, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(*d.host(kBufferGpa + 0x800 + 124, 1), blk::kStatusOk);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa, 100), data.data(), 100), 0);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa + 0x400, 800), data.data() + 100, 800), 0);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa + 0x800, 124), data.data() + 900, 124), 0);
}

TEST_F(VirtioBlkTest, MoreSegmentsThanIovMaxIsIoError) {
  disk = std::make_unique<FileBlockDevice>(d.loop(), 2048 * 512);
  blk = std::make_unique<VirtioBlk>(*disk);
  d.attach(*blk);
  d.start(featureBit(kFeatureIndirectDesc), {64});
  // One indirect table: header, `segments` one-sector data buffers, status.
  auto readWithSegments = [&](uint16_t segments) {
    uint64_t table = kDataArea + 0x10000;
    writeHeader(kHeaderGpa, blk::kTypeIn, 0);
    d.writeDescriptorAt(table, kHeaderGpa, 16, kDescFlagNext, 1);
    for (uint16_t i = 0; i < segments; ++i)
      d.writeDescriptorAt(table + 16ull * (i + 1), kBufferGpa, 512, kDescFlagWrite | kDescFlagNext,
                          static_cast<uint16_t>(i + 2));
    d.writeDescriptorAt(table + 16ull * (segments + 1), kStatusGpa, 1, kDescFlagWrite, 0);
    d.writeDescriptor(0, 0, table, 16u * (segments + 2), kDescFlagIndirect, 0);
    uint16_t expected = static_cast<uint16_t>(d.usedIdx(0) + 1);
    d.makeAvailable(0, 0);
    d.kick(0);
    EXPECT_TRUE(d.waitUsed(0, expected));
    return *d.host(kStatusGpa, 1);
  };
  EXPECT_EQ(readWithSegments(1000), blk::kStatusOk);
  EXPECT_EQ(readWithSegments(1100), blk::kStatusIoError);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(VirtioBlkTest, SeveralRequestsInFlightCompleteInAnyOrder) {
  startDevice();
  disk->deferCompletions = true;
  uint16_t heads[3];
  for (int i = 0; i < 3; ++i) {
    heads[i] = submit(blk::kTypeIn, static_cast<uint64_t>(i), 512, true, kStatusGpa + static_cast<uint64_t>(i),
                      kHeaderGpa + 0x20ull * static_cast<uint64_t>(i), kBufferGpa + 0x1000ull * static_cast<uint64_t>(i));
  }
  d.runLoopBriefly();
  EXPECT_EQ(disk->deferred.size(), 3u);
  EXPECT_EQ(blk->requestsInFlight(), 3u);
  EXPECT_EQ(d.usedIdx(0), 0);
  disk->completeDeferred(2);
  disk->completeDeferred(0);
  EXPECT_EQ(d.usedIdx(0), 2);
  EXPECT_EQ(*d.host(kStatusGpa + 1, 1), 0xff);  // still pending: status untouched
  disk->completeDeferred(1);
  EXPECT_EQ(d.usedIdx(0), 3);
  EXPECT_EQ(d.used(0, 0).id, heads[2]);
  EXPECT_EQ(d.used(0, 1).id, heads[0]);
  EXPECT_EQ(d.used(0, 2).id, heads[1]);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*d.host(kStatusGpa + static_cast<uint64_t>(i), 1), blk::kStatusOk);
  EXPECT_EQ(blk->requestsInFlight(), 0u);
}

TEST_F(VirtioBlkTest, CompletionAfterResetDoesNotTouchTheNewRings) {
  startDevice();
  disk->deferCompletions = true;
  submit(blk::kTypeIn, 0, 512, true);
  d.runLoopBriefly();
  ASSERT_EQ(disk->deferred.size(), 1u);
  d.setReg(mmio::kStatus, 0);
  d.start(featureBit(blk::kFeatureFlush), {64});
  disk->completeDeferred(0);
  EXPECT_EQ(d.usedIdx(0), 0);
  EXPECT_EQ(*d.host(kStatusGpa, 1), 0xff);
  disk->deferCompletions = false;
  EXPECT_EQ(run(blk::kTypeFlush, 0, 0, false), blk::kStatusOk);
}

TEST_F(VirtioBlkTest, RequestWithoutStatusByteFailsDevice) {
  startDevice();
  writeHeader(kHeaderGpa, blk::kTypeFlush, 0);
  d.addChain(0, {{kHeaderGpa, 16, false}});
  d.kick(0);
  EXPECT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_EQ(d.usedIdx(0), 0);
}

TEST_F(VirtioBlkTest, HeadMadeAvailableAgainWhileInFlightFailsDevice) {
  // A device never holds more chains than the queue size; reposting a head it
  // still holds is how a guest would make it allocate without limit.
  startDevice();
  disk->deferCompletions = true;
  uint16_t head = submit(blk::kTypeIn, 0, 512, true);
  d.runLoopBriefly();
  ASSERT_EQ(disk->deferred.size(), 1u);
  for (int i = 0; i < 3; ++i) d.makeAvailable(0, head);
  d.kick(0);
  ASSERT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_EQ(disk->deferred.size(), 1u);
  EXPECT_EQ(blk->requestsInFlight(), 1u);
  disk->completeDeferred(0);
  EXPECT_EQ(d.usedIdx(0), 0);
  EXPECT_EQ(blk->requestsInFlight(), 0u);
}

TEST_F(VirtioBlkTest, RequeuedHeadAfterCompletionIsFine) {
  startDevice();
  uint16_t head = submit(blk::kTypeFlush, 0, 0, false);
  ASSERT_TRUE(d.waitUsed(0, 1));
  for (uint16_t done = 2; done <= 10; ++done) {
    d.makeAvailable(0, head);  // the same descriptors again, once the device gave them back
    d.kick(0);
    ASSERT_TRUE(d.waitUsed(0, done));
  }
  EXPECT_FALSE(d.needsReset());
  EXPECT_EQ(disk->flushes, 10);
}

TEST_F(VirtioBlkTest, DriverOkClearedAndSetAgainDoesNotRestartTheRings) {
  startDevice();
  disk->deferCompletions = true;
  auto data = pattern(512, 5);
  disk->writeFile(0, data);
  submit(blk::kTypeIn, 0, 512, true);
  d.runLoopBriefly();
  ASSERT_EQ(disk->deferred.size(), 1u);
  uint32_t status = d.reg(mmio::kStatus);
  ASSERT_TRUE(status & kStatusDriverOk);
  d.setReg(mmio::kStatus, status & ~kStatusDriverOk);  // not a reset: the spec forbids clearing bits
  d.runLoopBriefly();
  d.setReg(mmio::kStatus, status);
  d.runLoopBriefly();
  EXPECT_EQ(d.reg(mmio::kStatus), status);
  EXPECT_EQ(disk->deferred.size(), 1u) << "the ring was re-activated and the request popped again";
  disk->completeDeferred(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(*d.host(kStatusGpa, 1), blk::kStatusOk);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa, 512), data.data(), 512), 0);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(VirtioBlkTest, ResetWaitsForReadsStartedBeforeIt) {
  // The real thread model: the loop on its own thread, this one a vCPU.
  disk = std::make_unique<FileBlockDevice>(d.loop(), kDiskBytes);
  disk->slowReads = true;
  disk->writeFile(0, pattern(512, 0x31));
  blk = std::make_unique<VirtioBlk>(*disk);
  d.attach(*blk);
  std::thread loopThread([&] { d.loop().run(); });
  ASSERT_TRUE(d.negotiate(featureBit(kFeatureVersion1)));
  d.setupQueue(0, 64);
  d.setReg(mmio::kStatus, d.reg(mmio::kStatus) | kStatusDriverOk);
  submit(blk::kTypeIn, 0, 512, true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (disk->slowReadsStarted.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(disk->slowReadsStarted.load(), 1);

  // The disk answers 300 ms after the driver resets the device.
  std::thread slowDisk([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    d.loop().post([&] { disk->slowReadsWaiting.at(0)(); });
  });
  d.setReg(mmio::kStatus, 0);
  // Reset done: the driver reuses the read's buffer for something else.
  std::memset(d.host(kBufferGpa, 512), 0, 512);
  slowDisk.join();
  std::promise<void> drained;
  d.loop().post([&] { drained.set_value(); });
  drained.get_future().wait();
  d.loop().stop();
  loopThread.join();

  EXPECT_EQ(std::vector<uint8_t>(d.host(kBufferGpa, 512), d.host(kBufferGpa, 512) + 512), std::vector<uint8_t>(512, 0))
      << "a read started before the reset wrote into guest memory after it";
  EXPECT_EQ(blk->requestsInFlight(), 0u);
}

TEST(VirtioBlkRawImage, RoundTripThroughRawBackend) {
  TestDriver d;
  char path[] = "/tmp/strata-virtio-raw-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
  ::close(fd);
  auto image = storage::RawImage::open(path, {}, d.loop());
  ASSERT_TRUE(image.ok()) << image.error().message;
  VirtioBlk blk(**image);
  d.attach(blk);
  d.start(0, {16});
  auto data = pattern(4096, 11);
  d.fill(kBufferGpa, data.data(), data.size());
  uint8_t header[16] = {};
  uint32_t type = blk::kTypeOut;
  uint64_t sector = 100;
  std::memcpy(header, &type, 4);
  std::memcpy(header + 8, &sector, 8);
  d.fill(kHeaderGpa, header, 16);
  d.addChain(0, {{kHeaderGpa, 16, false}, {kBufferGpa, 4096, false}, {kStatusGpa, 1, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(*d.host(kStatusGpa, 1), blk::kStatusOk);
  type = blk::kTypeIn;
  std::memcpy(header, &type, 4);
  d.fill(kHeaderGpa, header, 16);
  d.addChain(0, {{kHeaderGpa, 16, false}, {kBufferGpa + 0x2000, 4096, true}, {kStatusGpa, 1, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  EXPECT_EQ(*d.host(kStatusGpa, 1), blk::kStatusOk);
  EXPECT_EQ(std::memcmp(d.host(kBufferGpa + 0x2000, 4096), data.data(), 4096), 0);
  ::unlink(path);
}

}  // namespace
}  // namespace strata::virtio::testing
