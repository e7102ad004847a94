#include "virtio/virtqueue.h"

#include <atomic>
#include <bit>
#include <cstring>

#include <fmt/core.h>

#include "virtio/virtio_spec.h"

namespace strata::virtio {
namespace {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; byte swapping is not implemented");

struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

constexpr uint64_t kAvailRingOffset = 4;  // after flags, idx
constexpr uint64_t kUsedRingOffset = 4;
constexpr uint64_t kUsedElemSize = 8;
// An indirect table may not hold more descriptors than the largest queue could;
// bounds the iovec vectors a single request can make us allocate.
constexpr uint32_t kMaxIndirectDescriptors = kMaxQueueSize;

uint16_t loadRelaxed16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Result<void> VirtQueue::configure(const machine::GuestRam& ram, const QueueLayout& layout, bool indirectDescriptors,
                                  bool eventIdx) {
  disable();
  uint32_t size = layout.size;
  if (size == 0 || size > kMaxQueueSize || (size & (size - 1)) != 0)
    return Error{fmt::format("queue size {} is not a power of two in [1, {}]", size, kMaxQueueSize)};
  if (layout.descriptorTable % 16 || layout.availRing % 2 || layout.usedRing % 4)
    return Error{fmt::format("misaligned rings: descriptors {:#x} (needs 16), avail {:#x} (needs 2), used {:#x} (needs 4)",
                             layout.descriptorTable, layout.availRing, layout.usedRing)};
  uint64_t descBytes = 16ull * size;
  uint64_t availBytes = 6 + 2ull * size;  // flags, idx, ring[size], used_event
  uint64_t usedBytes = 6 + 8ull * size;   // flags, idx, ring[size], avail_event
  const uint8_t* desc = ram.translate(layout.descriptorTable, descBytes);
  uint8_t* avail = ram.translate(layout.availRing, availBytes);
  uint8_t* used = ram.translate(layout.usedRing, usedBytes);
  if (!desc || !avail || !used)
    return Error{fmt::format("rings outside guest RAM: descriptors {:#x}+{:#x}, avail {:#x}+{:#x}, used {:#x}+{:#x}",
                             layout.descriptorTable, descBytes, layout.availRing, availBytes, layout.usedRing,
                             usedBytes)};
  ram_ = &ram;
  size_ = static_cast<uint16_t>(size);  // 32768 fits
  indirect_ = indirectDescriptors;
  eventIdx_ = eventIdx;
  desc_ = desc;
  avail_ = avail;
  used_ = used;
  // A fresh queue starts at index 0 on both sides (spec 2.7.14 / 2.7.13).
  lastAvail_ = 0;
  usedIdx_ = 0;
  signalledUsed_ = 0;
  headInFlight_.assign(size, false);
  writableOfHead_.assign(size, {});
  inFlightCount_ = 0;
  broken_.reset();
  return {};
}

void VirtQueue::disable() {
  ram_ = nullptr;
  desc_ = nullptr;
  avail_ = nullptr;
  used_ = nullptr;
  size_ = 0;
  headInFlight_.clear();
  writableOfHead_.clear();
  inFlightCount_ = 0;
  broken_.reset();
}

uint16_t VirtQueue::loadAvailIdx() const {
  // Acquire: the ring entries and descriptors the driver wrote before bumping idx
  // must be visible to the reads that follow.
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(avail_ + 2), __ATOMIC_ACQUIRE);
}

void VirtQueue::publishAvailEvent() {
  uint8_t* availEvent = used_ + kUsedRingOffset + kUsedElemSize * size_;
  // Only the device writes this field, so an equal value needs no store; a
  // store would copy the ring's page out of the snapshot a clone shares (every
  // restored queue comes here once with the value it was saved with).
  if (loadRelaxed16(availEvent) != lastAvail_) {
    uint16_t value = lastAvail_;
    std::memcpy(availEvent, &value, sizeof value);
    ram_->markWritten(availEvent, sizeof value);
  }
  // Store-load barrier: the driver must see avail_event before we re-read avail idx,
  // otherwise a buffer added in between could go unnotified.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

Result<std::optional<DescriptorChain>> VirtQueue::popChain() {
  if (!enabled()) return std::optional<DescriptorChain>{};
  if (broken_) return *broken_;

  uint16_t availIdx = loadAvailIdx();
  uint16_t pending = static_cast<uint16_t>(availIdx - lastAvail_);
  if (pending == 0 && eventIdx_) {
    publishAvailEvent();
    availIdx = loadAvailIdx();
    pending = static_cast<uint16_t>(availIdx - lastAvail_);
  }
  if (pending > size_) {
    broken_ = Error{fmt::format("available index {} is {} entries ahead of the device's {} in a queue of {}", availIdx,
                                pending, lastAvail_, size_)};
    return *broken_;
  }
  if (pending == 0) return std::optional<DescriptorChain>{};

  uint16_t head = loadRelaxed16(avail_ + kAvailRingOffset + 2ull * (lastAvail_ % size_));
  // A head beyond the table is walkChain's to reject; the lookup here must stay in range.
  if (head < size_ && headInFlight_[head]) {
    broken_ = Error{fmt::format("virtqueue size exceeded: head {} made available again while the device holds it "
                                "({} of {} chains in flight)",
                                head, inFlightCount_, size_)};
    return *broken_;
  }
  DescriptorChain chain;
  chain.head = head;
  if (auto walked = walkChain(head, chain); !walked) {
    broken_ = walked.error();
    return *broken_;
  }
  ++lastAvail_;
  headInFlight_[head] = true;
  writableOfHead_[head] = chain.writable;
  ++inFlightCount_;
  lastPoppedHead_ = head;
  return std::optional<DescriptorChain>{std::move(chain)};
}

Result<void> VirtQueue::walkChain(uint16_t head, DescriptorChain& chain) const {
  const uint8_t* table = desc_;
  uint32_t tableSize = size_;
  bool inIndirect = false;
  uint32_t index = head;
  uint32_t visited = 0;
  bool sawWritable = false;
  const char* where = "descriptor";

  for (;;) {
    if (index >= tableSize)
      return Error{fmt::format("{} index {} (chain head {}) is beyond the table of {}", where, index, head, tableSize)};
    if (++visited > tableSize)
      return Error{fmt::format("{} chain at head {} loops or is longer than its table of {}", where, head, tableSize)};
    Descriptor d;
    std::memcpy(&d, table + 16ull * index, sizeof d);  // one read of guest data: no double fetch

    if (d.flags & kDescFlagIndirect) {
      if (!indirect_)
        return Error{fmt::format("descriptor {} (head {}) is indirect but INDIRECT_DESC was not negotiated", index, head)};
      if (inIndirect)
        return Error{fmt::format("nested indirect descriptor {} in the indirect table of head {}", index, head)};
      if (d.flags & kDescFlagNext)
        return Error{fmt::format("indirect descriptor {} (head {}) also has NEXT set", index, head)};
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > kMaxIndirectDescriptors)
        return Error{fmt::format("indirect table length {} (head {}) is not a non-zero multiple of 16 up to {} entries",
                                 d.len, head, kMaxIndirectDescriptors)};
      const uint8_t* indirectTable = ram_->translate(d.addr, d.len);
      if (!indirectTable)
        return Error{fmt::format("indirect table {:#x}+{:#x} (head {}) is outside guest RAM", d.addr, d.len, head)};
      table = indirectTable;
      tableSize = d.len / 16;
      inIndirect = true;
      index = 0;
      visited = 0;
      where = "indirect descriptor";
      continue;
    }

    uint8_t* host = ram_->translate(d.addr, d.len);
    if (!host)
      return Error{fmt::format("{} {} (head {}) buffer {:#x}+{:#x} is outside guest RAM", where, index, head, d.addr,
                               d.len)};
    if (d.flags & kDescFlagWrite) {
      sawWritable = true;
      if (d.len) chain.writable.push_back({host, d.len});
      chain.writableBytes += d.len;
    } else {
      // Spec 2.7.4.2: device-writable descriptors must follow all device-readable ones.
      if (sawWritable)
        return Error{fmt::format("{} {} (head {}) is device-readable but follows a device-writable one", where, index,
                                 head)};
      if (d.len) chain.readable.push_back({host, d.len});
      chain.readableBytes += d.len;
    }
    if (!(d.flags & kDescFlagNext)) return {};
    index = d.next;
  }
}

void VirtQueue::undoPop() { undoPop(lastPoppedHead_); }

void VirtQueue::undoPop(uint16_t head) {
  if (!enabled()) return;
  --lastAvail_;
  releaseHead(head);
}

void VirtQueue::releaseHead(uint16_t head) {
  if (head >= size_ || !headInFlight_[head]) return;
  headInFlight_[head] = false;
  --inFlightCount_;
}

void VirtQueue::pushUsed(uint16_t head, uint32_t bytesWritten) {
  if (!enabled()) return;
  if (head < size_ && headInFlight_[head])
    for (const iovec& written : writableOfHead_[head]) ram_->markWritten(static_cast<uint8_t*>(written.iov_base), written.iov_len);
  releaseHead(head);
  uint8_t* elem = used_ + kUsedRingOffset + kUsedElemSize * (usedIdx_ % size_);
  uint32_t id = head;
  std::memcpy(elem, &id, 4);
  std::memcpy(elem + 4, &bytesWritten, 4);
  ++usedIdx_;
  // Release: the element and the buffer contents must be visible before the new idx.
  __atomic_store_n(reinterpret_cast<uint16_t*>(used_ + 2), usedIdx_, __ATOMIC_RELEASE);
  ram_->markWritten(used_, 4);
  ram_->markWritten(elem, kUsedElemSize);
}

bool VirtQueue::shouldInterrupt() {
  if (!enabled()) return false;
  // Store-load barrier: our used idx store must be visible before we read the
  // driver's suppression fields, or both sides could decide not to act.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t previous = signalledUsed_;
  uint16_t now = usedIdx_;
  signalledUsed_ = now;
  if (previous == now) return false;
  if (eventIdx_) {
    uint16_t usedEvent = loadRelaxed16(avail_ + kAvailRingOffset + 2ull * size_);
    // vring_need_event: did used idx step past used_event in this batch?
    return static_cast<uint16_t>(now - usedEvent - 1) < static_cast<uint16_t>(now - previous);
  }
  return (loadRelaxed16(avail_) & kAvailFlagNoInterrupt) == 0;
}

VirtQueue::Position VirtQueue::position() const {
  return {static_cast<uint16_t>(lastAvail_ - inFlightCount_), usedIdx_, signalledUsed_};
}

void VirtQueue::resumeAt(const Position& position) {
  lastAvail_ = position.nextAvail;
  usedIdx_ = position.nextUsed;
  signalledUsed_ = position.signalledUsed;
}

}  // namespace strata::virtio
