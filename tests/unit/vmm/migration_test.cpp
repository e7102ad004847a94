// Live migration without a guest: the wire format round trip (zero, raw and
// zstd pages, device state, a mid-stream sync, the end CRC), refusal of garbage, damaged and
// out-of-range streams, the RAM dirty log, and PUT /vm/migrate's bad bodies;
// post-copy's page list record, and its fetch through userfaultfd against a
// source serving pages, with no guest (a thread touching RAM).
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/dirty_bitmap.h"
#include "machine/guest_ram.h"
#include "vmm/migration_postcopy.h"
#include "vmm/migration_routes.h"
#include "vmm/migration_stream.h"

namespace strata::vmm {
namespace {

using migration::ChannelReader;
using migration::ChannelWriter;
using migration::kPageBytes;

struct SocketPair {
  UniqueFd source, destination;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    source.reset(fds[0]);
    destination.reset(fds[1]);
  }
};

constexpr uint64_t kPages = 8;

// Sends pages 1 (zero), 2 (compressible), 5 (random, raw), a state record and the end.
std::vector<uint8_t> sampleStream(std::vector<uint8_t>& sourceRam, bool compress) {
  sourceRam.assign(kPages * kPageBytes, 0);
  std::memset(&sourceRam[2 * kPageBytes], 'a', kPageBytes);
  uint32_t seed = 12345;
  for (uint64_t i = 0; i < kPageBytes; ++i) sourceRam[5 * kPageBytes + i] = static_cast<uint8_t>((seed = seed * 1103515245 + 12345) >> 16);
  SocketPair pair;
  ChannelWriter writer(std::move(pair.source), compress);
  EXPECT_TRUE(writer.sendHello({0, 1, 77, kPages * kPageBytes}));
  for (uint64_t page : {1, 2, 5}) EXPECT_TRUE(writer.sendPage(page, &sourceRam[page * kPageBytes]));
  const uint8_t state[] = {9, 8, 7};
  EXPECT_TRUE(writer.sendState(state));
  EXPECT_TRUE(writer.sendEnd());
  std::vector<uint8_t> bytes(1 << 20);
  ssize_t got = ::recv(pair.destination.get(), bytes.data(), bytes.size(), MSG_DONTWAIT);
  bytes.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return bytes;
}

// Guest RAM of kPages pages, every byte `fill`.
std::unique_ptr<machine::GuestRam> guestRam(machine::RamBacking backing, uint8_t fill) {
  auto ram = machine::GuestRam::create(0, kPages * kPageBytes, backing);
  EXPECT_TRUE(ram);
  std::memset((*ram)->hostBase(), fill, kPages * kPageBytes);
  return std::move(*ram);
}

// Feeds `bytes` to a reader; returns its result and, in `ram`, what it wrote into a
// RAM of 0xee with `backing` (the memfd: bulk pages written with pwrite and holes;
// anonymous: through the mapping).
Result<void> receive(const std::vector<uint8_t>& bytes, std::vector<uint8_t>& ram, std::vector<uint8_t>& state,
                     machine::RamBacking backing = machine::RamBacking::SharedMemfd) {
  SocketPair pair;
  EXPECT_EQ(::send(pair.source.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  pair.source.reset();  // the source goes away after its stream
  auto guest = guestRam(backing, 0xee);
  ChannelReader reader(std::move(pair.destination));
  auto hello = reader.readHello();
  Result<void> received = hello ? reader.receive(*guest, &state) : Result<void>(hello.error());
  ram.assign(guest->hostBase(), guest->hostBase() + kPages * kPageBytes);
  return received;
}

// Into either RAM backing an incoming VM has: into the memfd (the default), the zero
// page 1 punches out the stale one.
TEST(MigrationStream, PagesAndStateArriveAsSentWithAndWithoutCompression) {
  for (auto [backing, compress] : {std::pair{machine::RamBacking::SharedMemfd, false}, {machine::RamBacking::SharedMemfd, true},
                                   {machine::RamBacking::MergeableAnonymous, false}, {machine::RamBacking::MergeableAnonymous, true}}) {
    std::vector<uint8_t> sourceRam, ram, state;
    auto bytes = sampleStream(sourceRam, compress);
    ASSERT_TRUE(receive(bytes, ram, state, backing)) << compress;
    for (uint64_t page : {1, 2, 5})
      EXPECT_EQ(std::memcmp(&ram[page * kPageBytes], &sourceRam[page * kPageBytes], kPageBytes), 0) << page;
    EXPECT_EQ(ram[0], 0xee) << "pages never sent are left alone";
    EXPECT_EQ(state, (std::vector<uint8_t>{9, 8, 7}));
    if (compress) EXPECT_LT(bytes.size(), 2 * kPageBytes) << "page 2 is compressed";
    else EXPECT_GT(bytes.size(), 2 * kPageBytes);
  }
}

TEST(MigrationStream, DamagedTruncatedAndForeignStreamsAreRefused) {
  std::vector<uint8_t> sourceRam, ram, state;
  const auto good = sampleStream(sourceRam, false);
  auto flipped = good;
  flipped[good.size() - 40] ^= 0x01;  // inside page 5's data
  auto outcome = receive(flipped, ram, state);
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("checksum mismatch"), std::string::npos) << outcome.error().message;

  std::vector<uint8_t> truncated(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  outcome = receive(truncated, ram, state);
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("closed the connection mid-stream"), std::string::npos);

  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  outcome = receive(std::vector<uint8_t>(http.begin(), http.end()), ram, state);
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("bad magic"), std::string::npos);

  auto beyond = good;
  const size_t firstPageRecord = 8 + 3 * 4 + 2 * 8;
  ASSERT_EQ(beyond[firstPageRecord], 1);  // a page record
  beyond[firstPageRecord + 1] = kPages;   // page number past RAM
  outcome = receive(beyond, ram, state);
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("beyond guest RAM"), std::string::npos) << outcome.error().message;
}

TEST(MigrationStream, ASyncIsAnsweredMidStreamAndAWrongAnswerFailsTheSource) {
  // Page 3 comes in the first round (written into the memfd), page 4 after the sync (through the mapping).
  std::vector<uint8_t> sourceRam(kPages * kPageBytes, 'x'), state;
  auto ram = guestRam(machine::RamBacking::SharedMemfd, 0);
  SocketPair pair;
  ChannelWriter writer(std::move(pair.source), false);
  ChannelReader reader(std::move(pair.destination));
  Result<void> received;
  std::thread destination([&] {
    if (auto hello = reader.readHello(); !hello) received = hello.error();
    else received = reader.receive(*ram, &state);
  });
  ASSERT_TRUE(writer.sendHello({0, 1, 79, kPages * kPageBytes}));
  ASSERT_TRUE(writer.sendPage(3, &sourceRam[3 * kPageBytes]));
  ASSERT_TRUE(writer.sendSync());
  EXPECT_TRUE(writer.awaitSync()) << "the destination answers once it applied the page";
  ASSERT_TRUE(writer.sendPage(4, &sourceRam[4 * kPageBytes]));
  ASSERT_TRUE(writer.sendEnd());
  destination.join();
  ASSERT_TRUE(received) << received.error().message;  // the sync record is inside the checksum on both sides
  for (uint64_t page : {3, 4}) EXPECT_EQ(ram->hostBase()[page * kPageBytes + 9], 'x') << page;

  for (const std::string answer : {"NOPE\n", "ERR out of memory\n", ""}) {
    SocketPair hostile;
    ChannelWriter source(std::move(hostile.source), false);
    ASSERT_TRUE(source.sendSync());
    ::send(hostile.destination.get(), answer.data(), answer.size(), 0);
    hostile.destination.reset();
    auto synced = source.awaitSync();
    ASSERT_FALSE(synced) << answer;
    if (answer.starts_with("ERR")) {
      EXPECT_NE(synced.error().message.find("refused the VM: out of memory"), std::string::npos);
    }
  }
}

// A hello, then a post-copy record of `count` with `pages`, then the end.
std::vector<uint8_t> postcopyStream(uint64_t count, const std::vector<uint64_t>& pages) {
  SocketPair pair;
  ChannelWriter writer(std::move(pair.source), false);
  EXPECT_TRUE(writer.sendHello({0, 1, 78, kPages * kPageBytes}));
  EXPECT_TRUE(writer.sendPostcopyPages(pages));
  EXPECT_TRUE(writer.sendEnd());
  std::vector<uint8_t> bytes(1 << 20);
  ssize_t got = ::recv(pair.destination.get(), bytes.data(), bytes.size(), MSG_DONTWAIT);
  bytes.resize(got > 0 ? static_cast<size_t>(got) : 0);
  const size_t countAt = 8 + 3 * 4 + 2 * 8 + 1;  // after the hello and the record's kind
  std::memcpy(&bytes[countAt], &count, 8);
  return bytes;
}

TEST(MigrationStream, PostcopyPageListArrivesAndAHostileOneIsRefused) {
  std::vector<uint8_t> ram, state;
  SocketPair pair;
  auto good = postcopyStream(2, {3, 6});
  ASSERT_EQ(::send(pair.source.get(), good.data(), good.size(), 0), static_cast<ssize_t>(good.size()));
  auto guest = guestRam(machine::RamBacking::SharedMemfd, 0);
  ChannelReader reader(std::move(pair.destination));
  ASSERT_TRUE(reader.readHello());
  ASSERT_TRUE(reader.receive(*guest, &state));
  EXPECT_TRUE(reader.postcopy());
  EXPECT_EQ(reader.postcopyPages(), (std::vector<uint64_t>{3, 6}));

  auto outcome = receive(postcopyStream(2, {3, kPages}), ram, state);
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("post-copy page 8 is beyond guest RAM"), std::string::npos)
      << outcome.error().message;
  outcome = receive(postcopyStream(uint64_t{1} << 40, {3}), ram, state);  // claims far more pages than RAM has
  ASSERT_FALSE(outcome);
  EXPECT_NE(outcome.error().message.find("unexpected post-copy record"), std::string::npos) << outcome.error().message;
}

TEST(MigrationPostcopy, TouchedPagesAreFetchedAndTheRestPushedThroughUserfaultfd) {
  constexpr uint64_t kRamPages = 64;
  auto ram = machine::GuestRam::create(0x80000000, kRamPages * kPageBytes);
  ASSERT_TRUE(ram);
  // Before the switch-over: pages 0-63 hold stale copies (0x11); 10, 20-29 and 40 were dirtied at the source.
  std::memset((*ram)->hostBase(), 0x11, kRamPages * kPageBytes);
  std::vector<uint8_t> source(kRamPages * kPageBytes);
  for (uint64_t page = 0; page < kRamPages; ++page) std::memset(&source[page * kPageBytes], static_cast<int>(page), kPageBytes);
  std::vector<uint64_t> missing{10, 40};
  for (uint64_t page = 20; page < 30; ++page) missing.push_back(page);
  auto destination = migration::PostcopyDestination::prepare(**ram, missing);
  if (!destination) GTEST_SKIP() << destination.error().message;
  SocketPair pair;
  std::thread served([&] {
    auto done = migration::servePostcopyPages(pair.source.get(), source.data(), kRamPages, missing, [](uint64_t, uint64_t) {});
    EXPECT_TRUE(done) << done.error().message;
  });
  VmConfig config;
  config.sandbox.seccomp = false;  // the fetcher's role is the integration tests' business
  VmControl control(config);
  (*destination)->start(ChannelReader(std::move(pair.destination)), config, control);
  // A touch of a missing page waits for it; the others kept their copy.
  EXPECT_EQ((*ram)->hostBase()[40 * kPageBytes + 7], 40);
  EXPECT_EQ((*ram)->hostBase()[10 * kPageBytes], 10);
  EXPECT_EQ((*ram)->hostBase()[11 * kPageBytes], 0x11);
  served.join();  // the source ends once the destination said it holds every page
  for (uint64_t page = 20; page < 30; ++page) EXPECT_EQ((*ram)->hostBase()[page * kPageBytes + 100], page) << page;
  destination->reset();
}

TEST(MigrationPostcopy, ALostSourcePausesTheDestinationWhichStaysUpUntilItEnds) {
  constexpr uint64_t kRamPages = 16;
  auto ram = machine::GuestRam::create(0x80000000, kRamPages * kPageBytes);
  ASSERT_TRUE(ram);
  auto destination = migration::PostcopyDestination::prepare(**ram, {3, 4});
  if (!destination) GTEST_SKIP() << destination.error().message;
  SocketPair pair;
  VmConfig config;
  config.sandbox.seccomp = false;
  VmControl control(config);
  (*destination)->start(ChannelReader(std::move(pair.destination)), config, control);
  pair.source.reset();  // the link drops before a page came
  for (int tries = 0; tries < 500 && !control.postcopyPaused(); ++tries)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(control.postcopyPaused()) << "the fetcher must report the pause, not end the process";
  EXPECT_EQ((*ram)->hostBase()[0], 0) << "pages that were never missing stay reachable";
  destination->reset();  // the VM ended by itself: the paused fetcher stops
}

TEST(MigrationStream, TcpAddressesAreParsedStrictly) {
  auto address = migration::parseTcpAddress("tcp:127.0.0.1:4444");
  ASSERT_TRUE(address);
  EXPECT_EQ(address->port, 4444);
  EXPECT_TRUE(migration::parseTcpAddress("tcp:localhost:1"));
  for (const char* bad : {"", "tcp:", "127.0.0.1:80", "tcp:127.0.0.1", "tcp:127.0.0.1:99999", "tcp:host.example:80",
                          "tcp:1.2.3.4:8x", "udp:1.2.3.4:80"})
    EXPECT_FALSE(migration::parseTcpAddress(bad)) << bad;
}

TEST(DirtyBitmap, MarksOnlyWhileLoggingAndTakesEachMarkOnce) {
  DirtyBitmap dirty(10 * 4096 + 1);
  EXPECT_EQ(dirty.pageCount(), 11u);
  dirty.markRange(0, 4096);
  std::vector<uint64_t> pages;
  dirty.takeMarked(pages);
  EXPECT_TRUE(pages.empty()) << "nothing is logged before logging starts";
  dirty.setLogging(true);
  dirty.markRange(4095, 2);          // straddles pages 0 and 1
  dirty.markRange(10 * 4096, 4096);  // the last, partial page; nothing past it
  dirty.takeMarked(pages);
  EXPECT_EQ(pages, (std::vector<uint64_t>{0, 1, 10}));
  pages.clear();
  dirty.takeMarked(pages);
  EXPECT_TRUE(pages.empty());
}

TEST(MigrationRoutes, BadBodiesGet400AndAStartWithoutABoardFails) {
  VmConfig config;
  VmControl control(config);
  ApiRouter router;
  addMigrationRoutes(router, control);
  EXPECT_EQ(router.dispatch("GET", "/vm/migrate", "").body["state"], "none");
  for (const char* body : {"", "{}", "[]", R"({"to": 5})", R"({"to": "tcp:1.2.3.4"})", R"({"to": "host:1"})",
                           R"({"to": "tcp:127.0.0.1:1", "channels": 0})", R"({"to": "tcp:127.0.0.1:1", "channels": 17})",
                           R"({"to": "tcp:127.0.0.1:1", "compress": "yes"})", R"({"to": "tcp:127.0.0.1:1", "downtime_ms": -5})",
                           R"({"to": "tcp:127.0.0.1:1", "speed": 1})"}) {
    auto reply = router.dispatch("PUT", "/vm/migrate", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_TRUE(reply.body.contains("error")) << body;
  }
  auto started = router.dispatch("PUT", "/vm/migrate", R"({"to": "tcp:127.0.0.1:1", "channels": 2, "compress": true})");
  EXPECT_EQ(started.status, 202) << started.body.dump();
  nlohmann::json progress;
  for (int tries = 0; tries < 500; ++tries) {
    progress = router.dispatch("GET", "/vm/migrate", "").body;
    if (progress["state"] != "active") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(progress["state"], "failed") << progress.dump();
  EXPECT_TRUE(progress.contains("error"));
}

}  // namespace
}  // namespace strata::vmm
