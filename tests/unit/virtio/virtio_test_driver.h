// A minimal virtio-mmio guest driver for unit tests: negotiates features and
// sets up split rings purely through the transport's registers, builds
// descriptor chains in a GuestRam by hand, kicks queues and runs the EventLoop
// until the device answers.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "machine/guest_ram.h"
#include "machine/mmio_device.h"
#include "virtio/mmio_transport.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio::testing {

inline constexpr uint64_t kRamBase = 0x80000000;
inline constexpr uint64_t kRamSize = 16 << 20;
// Each queue's rings live in their own 64 KiB area; data buffers start at 1 MiB.
inline constexpr uint64_t kRingArea = kRamBase;
inline constexpr uint64_t kDataArea = kRamBase + (1 << 20);

class FakeIrq : public machine::IrqLine {
 public:
  void setLevel(bool asserted) override {
    if (asserted && !level) ++raises;
    level = asserted;
  }
  bool level = false;
  int raises = 0;
};

struct Buffer {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

class TestDriver {
 public:
  TestDriver() {
    auto ram = machine::GuestRam::create(kRamBase, kRamSize);
    EXPECT_TRUE(ram.ok());
    ram_ = std::move(*ram);
    auto loop = EventLoop::create();
    EXPECT_TRUE(loop.ok());
    loop_ = std::move(*loop);
  }
  // A second device of the same VM: shares RAM and the EventLoop; its rings
  // start `ringOffset` bytes into the ring area (the first driver's use 64 KiB per queue).
  TestDriver(TestDriver& sameVm, uint64_t ringOffset)
      : ram_(sameVm.ram_), loop_(sameVm.loop_), ringArea_(kRingArea + ringOffset) {}

  void attach(VirtioDevice& device, VirtioMmioTransport::Options options = {}) {
    transport_ = std::make_unique<VirtioMmioTransport>("virtio-test", *ram_, irq_, *loop_, device, options);
  }

  machine::GuestRam& ram() { return *ram_; }
  EventLoop& loop() { return *loop_; }
  FakeIrq& irq() { return irq_; }
  VirtioMmioTransport& transport() { return *transport_; }

  uint32_t reg(uint64_t offset) { return static_cast<uint32_t>(transport_->read(offset, 4)); }
  void setReg(uint64_t offset, uint32_t value) { transport_->write(offset, 4, value); }
  uint64_t deviceFeatures() {
    setReg(mmio::kDeviceFeaturesSel, 0);
    uint64_t low = reg(mmio::kDeviceFeatures);
    setReg(mmio::kDeviceFeaturesSel, 1);
    return low | (uint64_t{reg(mmio::kDeviceFeatures)} << 32);
  }

  // Spec 3.1.1 steps 1-8 up to FEATURES_OK; returns whether the device accepted.
  bool negotiate(uint64_t features) {
    setReg(mmio::kStatus, 0);
    setReg(mmio::kStatus, kStatusAcknowledge);
    setReg(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    setReg(mmio::kDriverFeaturesSel, 0);
    setReg(mmio::kDriverFeatures, static_cast<uint32_t>(features));
    setReg(mmio::kDriverFeaturesSel, 1);
    setReg(mmio::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    setReg(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    negotiated_ = features;
    return reg(mmio::kStatus) & kStatusFeaturesOk;
  }

  // Programs queue q with `size` entries at its ring area.
  void setupQueue(unsigned q, uint16_t size) {
    uint64_t base = ringArea_ + 0x10000ull * q;
    if (queues_.size() <= q) queues_.resize(q + 1);
    queues_[q] = {size, base, base + 0x4000, base + 0x8000, 0, 0, 0};
    std::memset(ram_->translate(base, 0x10000), 0, 0x10000);
    setReg(mmio::kQueueSel, q);
    EXPECT_EQ(reg(mmio::kQueueReady), 0u);
    EXPECT_GE(reg(mmio::kQueueNumMax), size);
    setReg(mmio::kQueueNum, size);
    setReg(mmio::kQueueDescLow, static_cast<uint32_t>(queues_[q].desc));
    setReg(mmio::kQueueDescHigh, static_cast<uint32_t>(queues_[q].desc >> 32));
    setReg(mmio::kQueueDriverLow, static_cast<uint32_t>(queues_[q].avail));
    setReg(mmio::kQueueDriverHigh, static_cast<uint32_t>(queues_[q].avail >> 32));
    setReg(mmio::kQueueDeviceLow, static_cast<uint32_t>(queues_[q].used));
    setReg(mmio::kQueueDeviceHigh, static_cast<uint32_t>(queues_[q].used >> 32));
    setReg(mmio::kQueueReady, 1);
  }

  void driverOk() {
    setReg(mmio::kStatus, reg(mmio::kStatus) | kStatusDriverOk);
    runLoopBriefly();
  }

  // Full bring-up with the given features (VERSION_1 added) and queue sizes.
  void start(uint64_t features, std::vector<uint16_t> queueSizes) {
    ASSERT_TRUE(negotiate(features | featureBit(kFeatureVersion1)));
    for (unsigned q = 0; q < queueSizes.size(); ++q) setupQueue(q, queueSizes[q]);
    driverOk();
  }

  void writeDescriptor(unsigned q, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    writeDescriptorAt(queues_[q].desc + 16ull * index, addr, len, flags, next);
  }
  void writeDescriptorAt(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    uint8_t* p = ram_->translate(gpa, 16);
    std::memcpy(p, &addr, 8);
    std::memcpy(p + 8, &len, 4);
    std::memcpy(p + 12, &flags, 2);
    std::memcpy(p + 14, &next, 2);
  }

  // Places `head` in the next avail slot and publishes it.
  void makeAvailable(unsigned q, uint16_t head) {
    auto& dq = queues_[q];
    store16(dq.avail + 4 + 2ull * (dq.availIdx % dq.size), head);
    ++dq.availIdx;
    store16(dq.avail + 2, dq.availIdx);
  }
  void setAvailIdx(unsigned q, uint16_t idx) {
    queues_[q].availIdx = idx;
    store16(queues_[q].avail + 2, idx);
  }
  void setAvailFlags(unsigned q, uint16_t flags) { store16(queues_[q].avail, flags); }
  void setUsedEvent(unsigned q, uint16_t value) { store16(queues_[q].avail + 4 + 2ull * queues_[q].size, value); }
  uint16_t availEvent(unsigned q) { return load16(queues_[q].used + 4 + 8ull * queues_[q].size); }
  uint64_t usedRing(unsigned q) const { return queues_[q].used; }

  // Builds a direct chain from consecutive free descriptors and makes it available.
  uint16_t addChain(unsigned q, const std::vector<Buffer>& buffers) {
    auto& dq = queues_[q];
    uint16_t head = dq.nextFree;
    for (size_t i = 0; i < buffers.size(); ++i) {
      uint16_t index = static_cast<uint16_t>((head + i) % dq.size);
      bool last = i + 1 == buffers.size();
      uint16_t flags = (buffers[i].writable ? kDescFlagWrite : 0) | (last ? 0 : kDescFlagNext);
      writeDescriptor(q, index, buffers[i].gpa, buffers[i].len, flags, static_cast<uint16_t>((index + 1) % dq.size));
    }
    dq.nextFree = static_cast<uint16_t>((head + buffers.size()) % dq.size);
    makeAvailable(q, head);
    return head;
  }

  void kick(unsigned q) { setReg(mmio::kQueueNotify, q); }

  uint16_t usedIdx(unsigned q) { return load16(queues_[q].used + 2); }
  UsedElem used(unsigned q, uint16_t slot) {
    UsedElem e;
    std::memcpy(&e, ram_->translate(queues_[q].used + 4 + 8ull * (slot % queues_[q].size), 8), 8);
    return e;
  }

  // Runs the loop until pred() holds or a few seconds pass.
  bool runUntil(const std::function<bool()>& pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_->runOnce(10);
    }
    return true;
  }
  void runLoopBriefly() {
    for (int i = 0; i < 5; ++i) loop_->runOnce(1);
  }
  bool waitUsed(unsigned q, uint16_t idx) {
    return runUntil([&] { return usedIdx(q) == idx; });
  }

  uint8_t* host(uint64_t gpa, uint64_t len) { return ram_->translate(gpa, len); }
  void fill(uint64_t gpa, const void* data, size_t len) { std::memcpy(host(gpa, len), data, len); }

  bool needsReset() { return reg(mmio::kStatus) & kStatusDeviceNeedsReset; }

 private:
  struct DriverQueue {
    uint16_t size;
    uint64_t desc, avail, used;
    uint16_t availIdx;
    uint16_t nextFree;
    uint16_t pad;
  };
  void store16(uint64_t gpa, uint16_t v) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(ram_->translate(gpa, 2)), v, __ATOMIC_RELEASE);
  }
  uint16_t load16(uint64_t gpa) {
    return __atomic_load_n(reinterpret_cast<uint16_t*>(ram_->translate(gpa, 2)), __ATOMIC_ACQUIRE);
  }

  std::shared_ptr<machine::GuestRam> ram_;
  std::shared_ptr<EventLoop> loop_;
  uint64_t ringArea_ = kRingArea;
  FakeIrq irq_;
  std::unique_ptr<VirtioMmioTransport> transport_;
  std::vector<DriverQueue> queues_;
  uint64_t negotiated_ = 0;
};

}  // namespace strata::virtio::testing
