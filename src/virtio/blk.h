// VirtioBlk: the virtio block device (type 2) over a storage::BlockDevice.
// Parses each request from a descriptor chain, validates sector ranges and
// flags, submits it asynchronously (many may be in flight), and completes it
// by writing the status byte last and returning the chain to the used ring.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "storage/block_device.h"
#include "virtio/virtio_device.h"

namespace strata::virtio {

namespace blk {
inline constexpr unsigned kFeatureSizeMax = 1;
inline constexpr unsigned kFeatureSegMax = 2;
inline constexpr unsigned kFeatureReadOnly = 5;
inline constexpr unsigned kFeatureBlockSize = 6;
inline constexpr unsigned kFeatureFlush = 9;
inline constexpr unsigned kFeatureDiscard = 13;
inline constexpr unsigned kFeatureWriteZeroes = 14;

inline constexpr uint32_t kTypeIn = 0;
inline constexpr uint32_t kTypeOut = 1;
inline constexpr uint32_t kTypeFlush = 4;
inline constexpr uint32_t kTypeGetId = 8;
inline constexpr uint32_t kTypeDiscard = 11;
inline constexpr uint32_t kTypeWriteZeroes = 13;

inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoError = 1;
inline constexpr uint8_t kStatusUnsupported = 2;

inline constexpr uint32_t kSegmentFlagUnmap = 1;
inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint32_t kIdBytes = 20;

// Limits advertised in the config space.
inline constexpr uint16_t kQueueSize = 256;
inline constexpr uint32_t kMaxDiscardSectors = 0x3fffff;  // ~2 GiB per segment
inline constexpr uint32_t kMaxDiscardSegments = 32;
inline constexpr uint32_t kDiscardAlignmentSectors = 8;  // 4 KiB
}  // namespace blk

class VirtioBlk final : public VirtioDevice {
 public:
  // disk must outlive the device; its completions must arrive on the VM's EventLoop.
  explicit VirtioBlk(storage::BlockDevice& disk);

  uint32_t deviceId() const override;
  uint64_t deviceFeatures() const override;
  unsigned queueCount() const override { return 1; }
  uint16_t queueMaxSize(unsigned) const override { return blk::kQueueSize; }
  void onQueueNotify(unsigned queue) override;
  void whenIdle(std::function<void()> idle) override;

  uint64_t requestsInFlight() const { return inFlight_; }

 private:
  struct Request;
  void startRequest(DescriptorChain chain);
  void startDiscardOrZeroes(const std::shared_ptr<Request>& request, uint32_t type, uint64_t payloadBytes);
  void complete(const std::shared_ptr<Request>& request, uint8_t status);
  static uint8_t statusForErrno(int result);

  storage::BlockDevice& disk_;
  uint64_t inFlight_ = 0;
  std::vector<std::function<void()>> idleWaiters_;  // run when inFlight_ drops to 0
};

}  // namespace strata::virtio
