// Disk mirroring for live migration without shared storage, without a guest:
// the dirty-block tracker marks what completed writes touched (only while on);
// a mirror sends a disk with data, holes and a later write over a socket into
// another disk file, byte for byte; the destination refuses every malformed,
// mismatched or out-of-range record, and a stream's disk record with nowhere to
// go; PUT /vm/migrate takes "with_disks" as a boolean only.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

#include "../storage/storage_test_util.h"
#include "machine/guest_ram.h"
#include "storage/crc32c.h"
#include "storage/dirty_tracked_disk.h"
#include "storage/sync_io.h"
#include "vmm/migration_disks.h"
#include "vmm/migration_routes.h"

namespace strata::vmm {
namespace {

using storage::testing::TempDir;

constexpr uint64_t kDiskBytes = 1 << 20;

::testing::AssertionResult contains(const std::string& message, const std::string& text) {
  if (message.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << message << "' does not say '" << text << "'";
}

std::unique_ptr<storage::DirtyTrackedDisk> openTracked(const std::string& path, EventLoop& loop) {
  auto image = storage::openDiskImage(path, {.format = storage::ImageFormat::Raw}, loop);
  EXPECT_TRUE(image) << (image ? "" : image.error().message);
  return std::make_unique<storage::DirtyTrackedDisk>(std::move(*image));
}

std::vector<uint8_t> pattern(size_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  for (auto& byte : bytes) byte = static_cast<uint8_t>((seed = seed * 1103515245 + 12345) >> 16);
  return bytes;
}

TEST(DirtyTrackedDisk, MarksTheBlocksCompletedChangesTouchedOnlyWhileTracking) {
  TempDir dir;
  storage::testing::writeFile(dir.file("disk.raw"), std::vector<uint8_t>(kDiskBytes));
  auto loop = EventLoop::create();
  auto disk = openTracked(dir.file("disk.raw"), **loop);
  const auto bytes = pattern(100, 1);
  ASSERT_TRUE(storage::writeSync(*disk, **loop, 0, bytes.data(), bytes.size()));  // not tracking yet
  disk->dirtyBlocks().setLogging(true);
  ASSERT_TRUE(storage::writeSync(*disk, **loop, 4096 + 4000, bytes.data(), bytes.size()));  // blocks 1 and 2
  ASSERT_TRUE(storage::writeZeroesSync(*disk, **loop, 5 * 4096, 4096));
  std::vector<uint8_t> readBack(4096);
  ASSERT_TRUE(storage::readSync(*disk, **loop, 9 * 4096, readBack.data(), readBack.size()));
  std::vector<uint64_t> marked;
  disk->dirtyBlocks().takeMarked(marked);
  EXPECT_EQ(marked, (std::vector<uint64_t>{1, 2, 5}));
  marked.clear();
  disk->dirtyBlocks().takeMarked(marked);
  EXPECT_TRUE(marked.empty()) << "each mark is taken once";
}

// Runs the source's loop on its own thread, as a VM's is, while the test thread mirrors.
struct RunningLoop {
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::create());
  std::thread thread{[this] { loop->run(); }};
  ~RunningLoop() {
    loop->stop();
    thread.join();
  }
};

TEST(DiskMirror, CopiesDataHolesAndLaterWritesIntoAnotherDisk) {
  TempDir dir;
  // The source: random data in block 0 and across [512 KiB, +70000), holes elsewhere.
  // The destination starts full of 0xee, so holes must really be written as zeroes.
  std::vector<uint8_t> source(kDiskBytes);
  const auto head = pattern(4096, 2), middle = pattern(70000, 3);
  std::memcpy(source.data(), head.data(), head.size());
  std::memcpy(source.data() + (512 << 10), middle.data(), middle.size());
  storage::testing::writeFile(dir.file("src.raw"), source);
  storage::testing::writeFile(dir.file("dst.raw"), std::vector<uint8_t>(kDiskBytes, 0xee));

  RunningLoop sourceLoop;
  auto sourceDisk = openTracked(dir.file("src.raw"), *sourceLoop.loop);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto received = std::async(std::launch::async, [&] {
    auto loop = EventLoop::create();
    std::vector<std::unique_ptr<storage::BlockDevice>> disks;
    disks.push_back(openTracked(dir.file("dst.raw"), **loop));
    migration::DiskMirrorTarget target(disks, **loop);
    migration::ChannelReader reader{UniqueFd(fds[1])};
    reader.setDiskSink([&](std::span<const uint8_t> record) { return target.apply(record); });
    auto ram = machine::GuestRam::create(0, migration::kPageBytes);  // the stream carries disk records only
    auto done = ram ? reader.receive(**ram, nullptr) : Result<void>(ram.error());
    if (done && !target.mirrored()) done = Error{"no manifest came"};
    if (done) done = target.finish();
    return done;
  });
  migration::ChannelWriter writer(UniqueFd(fds[0]), false);
  auto mirror = migration::DiskMirror::start({sourceDisk.get()}, *sourceLoop.loop);
  ASSERT_TRUE(mirror) << mirror.error().message;
  ASSERT_TRUE((*mirror)->sendManifest(writer));
  ASSERT_TRUE((*mirror)->sendPending(writer));
  // A write completing after the first pass (as a guest's would, on the loop) goes in the next round.
  const auto later = pattern(4096, 4);
  std::memcpy(source.data() + 3 * 4096, later.data(), later.size());
  std::promise<int> written;
  sourceLoop.loop->post([&] {
    sourceDisk->writev(3 * 4096, {iovec{const_cast<uint8_t*>(later.data()), later.size()}},
                       [&](int result) { written.set_value(result); });
  });
  ASSERT_EQ(written.get_future().get(), 0);
  (*mirror)->takeDirty();
  EXPECT_EQ((*mirror)->pendingBlocks(), 1u);
  ASSERT_TRUE((*mirror)->sendPending(writer));
  ASSERT_TRUE(writer.sendEnd());
  auto done = received.get();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_TRUE(storage::testing::readFile(dir.file("dst.raw")) == source) << "the destination holds the source's bytes";
}

std::vector<uint8_t> record(std::initializer_list<std::pair<const void*, size_t>> fields) {
  std::vector<uint8_t> bytes;
  for (auto [data, size] : fields) bytes.insert(bytes.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  return bytes;
}

TEST(DiskMirrorTarget, RefusesMalformedMismatchedAndOutOfRangeRecords) {
  TempDir dir;
  storage::testing::writeFile(dir.file("dst.raw"), std::vector<uint8_t>(kDiskBytes));
  auto loop = EventLoop::create();
  std::vector<std::unique_ptr<storage::BlockDevice>> disks;
  disks.push_back(openTracked(dir.file("dst.raw"), **loop));
  migration::DiskMirrorTarget target(disks, **loop);
  const uint8_t manifest = 5, data = 2, zero = 3, flush = 4, unknown = 9, raw = 0;
  const uint32_t disk0 = 0, disk1 = 1, oneDisk = 1, twoDisks = 2;
  const uint64_t size = kDiskBytes, smaller = kDiskBytes - 4096, at = 4096, past = kDiskBytes - 10, huge = ~uint64_t{0} - 5;
  const auto bytes = pattern(100, 5);
  const uint32_t crc = storage::crc32c(bytes.data(), bytes.size()), badCrc = crc ^ 1;
  auto refused = [&](const std::vector<uint8_t>& bad, const std::string& why) {
    auto applied = target.apply(bad);
    EXPECT_FALSE(applied) << why;
    return applied ? std::string() : applied.error().message;
  };
  EXPECT_TRUE(contains(refused(record({{&data, 1}, {&disk0, 4}, {&at, 8}, {&crc, 4}, {bytes.data(), bytes.size()}}), "before"),
                       "before the disk manifest"));
  EXPECT_TRUE(contains(refused(record({{&flush, 1}}), "flush before"), "before the disk manifest"));
  EXPECT_TRUE(contains(refused(record({{&manifest, 1}, {&twoDisks, 4}, {&size, 8}, {&raw, 1}, {&size, 8}, {&raw, 1}}), "count"), "mirrors 2 disks"));
  EXPECT_TRUE(contains(refused(record({{&manifest, 1}, {&oneDisk, 4}, {&smaller, 8}, {&raw, 1}}), "size"), "bytes, this one"));
  EXPECT_TRUE(contains(refused(record({{&manifest, 1}, {&oneDisk, 4}}), "short"), "cut short"));
  EXPECT_TRUE(contains(refused({}, "empty"), "cut short"));
  ASSERT_TRUE(target.apply(record({{&manifest, 1}, {&oneDisk, 4}, {&size, 8}, {&raw, 1}})));
  EXPECT_TRUE(target.mirrored());
  EXPECT_TRUE(contains(refused(record({{&manifest, 1}, {&oneDisk, 4}, {&size, 8}, {&raw, 1}}), "again"), "second disk manifest"));
  EXPECT_TRUE(contains(refused(record({{&data, 1}, {&disk0, 4}, {&at, 8}, {&badCrc, 4}, {bytes.data(), bytes.size()}}), "crc"),
                       "checksum mismatch"));
  EXPECT_TRUE(contains(refused(record({{&data, 1}, {&disk1, 4}, {&at, 8}, {&crc, 4}, {bytes.data(), bytes.size()}}), "disk"),
                       "for disk 1 of 1"));
  EXPECT_TRUE(contains(refused(record({{&data, 1}, {&disk0, 4}, {&past, 8}, {&crc, 4}, {bytes.data(), bytes.size()}}), "end"),
                       "past its end"));
  EXPECT_TRUE(contains(refused(record({{&zero, 1}, {&disk0, 4}, {&huge, 8}, {&size, 8}}), "overflow"), "past its end"));
  EXPECT_TRUE(contains(refused(record({{&zero, 1}, {&disk0, 4}, {&at, 8}}), "zero short"), "cut short"));
  EXPECT_TRUE(contains(refused(record({{&unknown, 1}}), "kind"), "unknown disk record kind"));
  ASSERT_TRUE(target.apply(record({{&data, 1}, {&disk0, 4}, {&at, 8}, {&crc, 4}, {bytes.data(), bytes.size()}})));
  ASSERT_TRUE(target.apply(record({{&flush, 1}})));
  const auto written = storage::testing::readFile(dir.file("dst.raw"));
  EXPECT_EQ(std::vector<uint8_t>(written.begin() + at, written.begin() + at + bytes.size()), bytes);
}

// The manifest's sizes and formats make files on the destination: a peer's
// absurd or malformed announcement is refused before anything is made.
TEST(DiskManifest, RefusesBadSizesFormatsAndShapes) {
  const uint8_t manifest = 5, oldManifest = 1, raw = 0, qcow2 = 1, badFormat = 7;
  const uint32_t oneDisk = 1, twoDisks = 2, tooMany = 9;
  const uint64_t size = 64 << 20, zero = 0, odd = (64 << 20) + 100, huge = migration::kMaxAnnouncedDiskBytes + 512;
  auto refusal = [](const std::vector<uint8_t>& bad) {
    auto parsed = migration::parseDiskManifest(bad);
    return parsed ? std::string("accepted") : parsed.error().message;
  };
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&oneDisk, 4}, {&zero, 8}, {&raw, 1}})), "announces 0 bytes"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&oneDisk, 4}, {&odd, 8}, {&raw, 1}})), "multiple of 512"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&oneDisk, 4}, {&huge, 8}, {&raw, 1}})), "multiple of 512 up to"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&oneDisk, 4}, {&size, 8}, {&badFormat, 1}})), "unknown format 7"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&oneDisk, 4}, {&size, 8}, {&raw, 1}, {&raw, 1}})), "past its last disk"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&twoDisks, 4}, {&size, 8}, {&raw, 1}})), "cut short"));
  EXPECT_TRUE(contains(refusal(record({{&manifest, 1}, {&tooMany, 4}})), "announces 9 disks"));
  EXPECT_TRUE(contains(refusal(record({{&oldManifest, 1}, {&oneDisk, 4}, {&size, 8}})), "not a manifest"));
  auto parsed = migration::parseDiskManifest(record({{&manifest, 1}, {&twoDisks, 4}, {&size, 8}, {&raw, 1}, {&size, 8}, {&qcow2, 1}}));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].format, storage::ImageFormat::Raw);
  EXPECT_EQ((*parsed)[1].format, storage::ImageFormat::Qcow2);
  EXPECT_EQ((*parsed)[1].sizeBytes, size);
}

// A destination waiting for the disk manifest refuses a source that sends a page first.
TEST(MigrationStream, ReadingTheDiskManifestRefusesAPageFirst) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  migration::ChannelWriter writer(UniqueFd(fds[0]), false);
  std::vector<uint8_t> page(migration::kPageBytes, 7);
  ASSERT_TRUE(writer.sendPage(0, page.data()));
  ASSERT_TRUE(writer.sendEnd());
  migration::ChannelReader reader{UniqueFd(fds[1])};
  auto got = reader.readDiskRecord();
  ASSERT_FALSE(got);
  EXPECT_TRUE(contains(got.error().message, "does not mirror its disks"));
}

TEST(MigrationStream, ADiskRecordWithNowhereToGoIsRefused) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  migration::ChannelWriter writer(UniqueFd(fds[0]), false);
  const uint8_t bytes[] = {1, 0, 0, 0, 0};
  ASSERT_TRUE(writer.sendDiskRecord(bytes));
  ASSERT_TRUE(writer.sendEnd());
  migration::ChannelReader reader{UniqueFd(fds[1])};
  auto ram = machine::GuestRam::create(0, migration::kPageBytes);
  ASSERT_TRUE(ram);
  auto got = reader.receive(**ram, nullptr);
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("unexpected disk record"), std::string::npos) << got.error().message;
}

TEST(MigrationRoutes, WithDisksMustBeABoolean) {
  VmConfig config;
  VmControl control(config);
  ApiRouter router;
  addMigrationRoutes(router, control);
  auto reply = router.dispatch("PUT", "/vm/migrate", R"({"to": "tcp:127.0.0.1:1", "with_disks": 1})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_TRUE(contains(reply.body.value("error", ""), "\"with_disks\" must be true or false"));
}

}  // namespace
}  // namespace strata::vmm
