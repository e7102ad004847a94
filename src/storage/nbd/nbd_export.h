// NbdExport: what `strata nbd serve` offers under one name — a BlockDevice plus
// the policy around it (read-only, description) and an optional block status
// source for the base:allocation metadata context. NbdLimits bounds what one
// client may make the server hold, so a hostile peer cannot exhaust memory.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"
#include "storage/block_device.h"
#include "storage/disk_image.h"

namespace strata::storage::nbd {

// One extent as base:allocation reports it: kStateHole / kStateZero flags.
struct AllocationExtent {
  uint64_t length = 0;  // > 0 and never past the queried range
  uint32_t flags = 0;
};
using BlockStatusSource = std::function<Result<AllocationExtent>(uint64_t offset, uint64_t length)>;

struct NbdExport {
  std::string name;  // the empty name (the protocol's default export) also selects the first export
  std::string description;
  BlockDevice* device = nullptr;  // not owned; must outlive the server
  bool readOnly = false;          // refuse writes even if the device accepts them
  BlockStatusSource blockStatus;  // empty: every range is reported as allocated data
};

struct NbdLimits {
  uint32_t maxPayload = 32u << 20;         // largest READ/WRITE; advertised as the maximum block size
  uint32_t preferredBlockSize = 4096;
  size_t maxOptionLength = 64u << 10;      // option data beyond this gets NBD_REP_ERR_TOO_BIG and a disconnect
  size_t maxInflightRequests = 64;         // per connection; more requests wait in the socket
  size_t maxBufferedBytes = 64u << 20;     // per connection: payloads held plus replies not yet sent
  size_t maxConnections = 128;             // further clients are refused at accept
  // A client must finish option haggling (the TLS handshake included) within
  // this time or be disconnected, so stalled clients cannot hold every slot. 0: no limit.
  std::chrono::milliseconds handshakeLimit{10000};
  size_t maxBlockStatusExtents = 1024;     // per NBD_CMD_BLOCK_STATUS reply
};

// Block status of a disk image as a client sees it: unallocated ranges are
// looked up in the backing chain; ranges nothing allocates read as zero holes.
BlockStatusSource diskImageBlockStatus(DiskImage& image);

}  // namespace strata::storage::nbd
