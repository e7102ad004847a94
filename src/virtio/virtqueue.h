// VirtQueue: the device side of one split virtqueue that lives in guest RAM.
// Every value the guest controls (ring indices, descriptor indices, addresses,
// lengths, flags) is validated before use, and the device never holds more
// chains than the queue has entries; a malformed ring yields an Error and
// leaves the queue broken until it is reconfigured. Used only on the VM's
// EventLoop thread; the guest driver runs concurrently on vCPU threads, hence
// the acquire/release ordering on the ring indices.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "machine/guest_ram.h"

namespace strata::virtio {

// One request popped from the available ring. The iovecs point into guest RAM.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<iovec> readable;  // driver -> device
  std::vector<iovec> writable;  // device -> driver
  uint64_t readableBytes = 0;
  uint64_t writableBytes = 0;
};

// Guest-physical placement of a split ring, as the driver programmed it.
struct QueueLayout {
  uint16_t size = 0;
  uint64_t descriptorTable = 0;
  uint64_t availRing = 0;  // "driver area"
  uint64_t usedRing = 0;   // "device area"
};

class VirtQueue {
 public:
  // Maps the rings; fails if the size is not a power of two in [1, 32768], a
  // ring is misaligned, or any ring byte lies outside guest RAM.
  Result<void> configure(const machine::GuestRam& ram, const QueueLayout& layout, bool indirectDescriptors,
                         bool eventIdx);
  void disable();
  bool enabled() const { return desc_ != nullptr; }
  uint16_t size() const { return size_; }

  // The next available descriptor chain; nullopt when the driver has posted
  // nothing new; Error (with the reason) when the guest's ring data is invalid,
  // including a head that is still in flight (popped and not yet pushed back):
  // that is how a driver would make the device hold more chains than the queue
  // size ("virtqueue size exceeded" in QEMU).
  Result<std::optional<DescriptorChain>> popChain();
  // Puts the most recently popped chain back (it was not consumed), e.g. an RX
  // buffer too small for the frame at hand.
  void undoPop();
  // Puts back the chain with this head; several go back newest first (merged RX buffers).
  void undoPop(uint16_t head);
  // Returns a chain to the driver with the number of bytes the device wrote.
  void pushUsed(uint16_t head, uint32_t bytesWritten);
  // True if the driver wants an interrupt for the used entries published since
  // the previous call (honours VIRTQ_AVAIL_F_NO_INTERRUPT or used_event).
  bool shouldInterrupt();

  // The device-side ring positions, for snapshots. Chains the device still
  // holds count as not yet consumed (as QEMU rewinds by its in-use count), so
  // a restored device pops them again; a quiesced device holds none for blk.
  struct Position {
    uint16_t nextAvail = 0;
    uint16_t nextUsed = 0;
    uint16_t signalledUsed = 0;
  };
  Position position() const;
  // On a freshly configured queue: continue from a saved position.
  void resumeAt(const Position& position);

 private:
  Result<void> walkChain(uint16_t head, DescriptorChain& chain) const;
  uint16_t loadAvailIdx() const;
  void releaseHead(uint16_t head);
  void publishAvailEvent();

  const machine::GuestRam* ram_ = nullptr;
  uint16_t size_ = 0;
  bool indirect_ = false;
  bool eventIdx_ = false;
  const uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  uint16_t lastAvail_ = 0;     // next avail ring slot to consume
  uint16_t usedIdx_ = 0;       // next used ring slot to fill
  uint16_t signalledUsed_ = 0; // used index at the last interrupt decision
  // Heads the device holds (popped, not yet used), indexed by head.
  std::vector<bool> headInFlight_;
  // What each held chain lets the device write: marked in RAM's dirty log when
  // the chain is used, after the device wrote it (live migration).
  std::vector<std::vector<iovec>> writableOfHead_;
  uint16_t inFlightCount_ = 0;  // for the error message
  uint16_t lastPoppedHead_ = 0;
  std::optional<Error> broken_;
};

}  // namespace strata::virtio
