#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "fuzz_targets.h"
#include "memory_block_device.h"
#include "storage/nbd/nbd_protocol.h"
#include "storage/nbd/nbd_server.h"

namespace strata::fuzz {

namespace {

using namespace storage::nbd;

struct NbdState {
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<storage::testing::MemoryBlockDevice> device;
  std::unique_ptr<NbdServer> server;
};

NbdState& state() {
  static NbdState* instance = [] {
    // STRATA_FUZZ_DEBUG=1 shows why inputs are refused when replaying one.
    log::setLevel(std::getenv("STRATA_FUZZ_DEBUG") ? log::Level::Debug : log::Level::Error);
    auto* created = new NbdState;
    created->loop = std::move(*EventLoop::create());
    created->device = std::make_unique<storage::testing::MemoryBlockDevice>(*created->loop, 256 * 1024);
    // Small limits, so inputs of fuzzer size reach them.
    NbdLimits limits;
    limits.maxPayload = 128 * 1024;
    limits.maxOptionLength = 4096;
    limits.maxInflightRequests = 4;
    limits.maxBufferedBytes = 512 * 1024;
    limits.maxBlockStatusExtents = 8;
    NbdExport disk;
    disk.name = "disk";
    disk.description = "fuzz";
    disk.device = created->device.get();
    disk.blockStatus = [](uint64_t offset, uint64_t length) -> Result<AllocationExtent> {
      uint64_t step = std::min<uint64_t>(length, 4096 - offset % 4096);
      return AllocationExtent{step, (offset / 4096) % 3 == 0 ? (kStateHole | kStateZero) : 0u};
    };
    NbdExport readOnly = disk;
    readOnly.name = "ro";
    readOnly.readOnly = true;
    readOnly.blockStatus = {};
    created->server = std::make_unique<NbdServer>(*created->loop, std::vector{disk, readOnly}, limits);
    return created;
  }();
  return *instance;
}

std::vector<uint8_t> validHandshake() {
  std::vector<uint8_t> bytes;
  WireWriter writer(bytes);
  writer.u32(kClientFlagFixedNewstyle | kClientFlagNoZeroes);
  writer.u64(kOptionMagic).u32(kOptStructuredReply).u32(0);
  std::string query(kBaseAllocation);
  writer.u64(kOptionMagic).u32(kOptSetMetaContext).u32(static_cast<uint32_t>(4 + 4 + 4 + 4 + query.size()));
  writer.u32(4).bytes("disk").u32(1).u32(static_cast<uint32_t>(query.size())).bytes(query);
  writer.u64(kOptionMagic).u32(kOptGo).u32(4 + 4 + 2);
  writer.u32(4).bytes("disk").u16(0);
  return bytes;
}

}  // namespace

int nbdServerOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& fuzz = state();
  std::vector<uint8_t> input;
  if (data[0] & 1) input = validHandshake();
  input.insert(input.end(), data + 1, data + size);

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return 0;
  UniqueFd client(pair[1]);
  if (!fuzz.server->serveConnection(UniqueFd(pair[0]), "fuzz client")) return 0;

  // Play the client: send everything, then end the input, reading (and dropping)
  // replies all along, until the server has closed the session and finished all
  // device requests. A server that never gets there is a hang: trap.
  size_t sent = 0;
  bool ended = false;
  std::vector<uint8_t> sink(65536);
  for (long spins = 0;; ++spins) {
    if (sent < input.size()) {
      ssize_t n = ::send(client.get(), input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sent = input.size();  // server closed on us
    } else if (!ended) {
      ::shutdown(client.get(), SHUT_WR);
      ended = true;
    }
    fuzz.loop->runOnce(0);
    while (::recv(client.get(), sink.data(), sink.size(), 0) > 0) {
    }
    if (ended && fuzz.server->connectionCount() == 0 && fuzz.server->idle()) break;
    if (spins > 1000000) __builtin_trap();
  }
  return 0;
}

}  // namespace strata::fuzz
