// VirtioMmioTransport: the virtio-mmio (version 2, non-legacy) register window
// through which the guest driver discovers, negotiates and drives one
// VirtioDevice. Register accesses come from vCPU threads and are serialised by
// a mutex; queue notifications are handed to the VM's EventLoop, where the
// device runs and where used-ring updates and interrupts originate.
//
// A driver reset (Status = 0) returns only after the loop has reset the device,
// so no device work still running can touch the rings the driver reinitialises.
//
// Lifetime: the EventLoop must be stopped (no more tasks run) before the
// transport or its device is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "machine/guest_ram.h"
#include "machine/mmio_device.h"
#include "virtio/virtio_device.h"
#include "virtio/virtqueue.h"

namespace strata::virtio {

// Register offsets (virtio 1.2, 4.2.2).
namespace mmio {
inline constexpr uint64_t kMagicValue = 0x000;
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kShmSel = 0x0ac;
inline constexpr uint64_t kShmLenLow = 0x0b0;
inline constexpr uint64_t kShmLenHigh = 0x0b4;
inline constexpr uint64_t kShmBaseLow = 0x0b8;
inline constexpr uint64_t kShmBaseHigh = 0x0bc;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kVersion2 = 2;
inline constexpr uint32_t kStrataVendorId = 0x41545253;  // "SRTA" in guest memory order
// Size of one device's register window on the bus (QEMU virt spaces them 0x1000 apart).
inline constexpr uint64_t kWindowSize = 0x200;
}  // namespace mmio

class VirtioMmioTransport final : public machine::MmioDevice, private VirtioHost {
 public:
  struct Options {
    bool offerEventIdx = true;
    bool offerIndirectDescriptors = true;
  };

  // ram, irq, loop and device must outlive the transport. `name` labels log lines ("virtio-blk0").
  VirtioMmioTransport(std::string name, const machine::GuestRam& ram, machine::IrqLine& irq, EventLoop& loop,
                      VirtioDevice& device, Options options);
  VirtioMmioTransport(std::string name, const machine::GuestRam& ram, machine::IrqLine& irq, EventLoop& loop,
                      VirtioDevice& device)
      : VirtioMmioTransport(std::move(name), ram, irq, loop, device, Options{}) {}
  ~VirtioMmioTransport() override;

  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  const std::string& name() const { return name_; }

  // EventLoop thread. While held the device takes no chain from its queues
  // (a paused VM's devices start no new work); notifications wait and run
  // once released.
  void holdQueues(bool held);

 private:
  struct QueueRegisters {
    uint32_t num = 0;
    bool ready = false;
    uint64_t desc = 0;
    uint64_t driver = 0;
    uint64_t device = 0;
  };

  // VirtioHost (EventLoop thread).
  VirtQueue& queue(unsigned index) override { return queues_[index]; }
  void notifyUsed(unsigned queueIndex) override;
  void failDevice(const std::string& reason) override;
  bool deviceFailed() const override { return failed_; }
  void notifyConfigChange() override;
  bool takeChainBudget(unsigned q) override;
  EventLoop& loop() override { return loop_; }

  uint32_t readRegister(uint64_t offset);
  void writeRegister(uint64_t offset, uint32_t value);
  void writeStatus(uint32_t value);  // non-zero values; 0 goes to resetFromDriver
  void resetFromDriver();
  void resetRegisters();
  void raiseInterrupt(uint32_t bits);
  void postActivation();
  // Marks queue q notified and posts a drain task unless one is pending already.
  void postNotify(unsigned q);
  // EventLoop-side halves.
  void activateOnLoop(uint64_t epoch, uint64_t features, std::vector<QueueRegisters> queues);
  void resetOnLoop();
  void drainNotifications();
  uint64_t offeredFeatures() const;

  const std::string name_;
  const machine::GuestRam& ram_;
  machine::IrqLine& irq_;
  EventLoop& loop_;
  VirtioDevice& device_;
  const Options options_;
  const unsigned queueCount_;

  // Register state, guarded by mutex_ (vCPU threads and the loop).
  mutable std::mutex mutex_;
  uint32_t status_ = 0;
  uint32_t deviceFeaturesSel_ = 0;
  uint32_t driverFeaturesSel_ = 0;
  uint64_t driverFeatures_ = 0;
  uint32_t queueSel_ = 0;
  std::vector<QueueRegisters> queueRegs_;
  uint32_t interruptStatus_ = 0;
  uint32_t configGeneration_ = 0;
  // Bumped on every reset (under mutex_). Loop work carries the epoch it was
  // started in, so stale work cannot touch a re-initialised device.
  std::atomic<uint64_t> epoch_{0};

  // Queue notifications not yet handed to the device; one bit per queue.
  std::atomic<uint64_t> pendingNotify_{0};

  // The thread that last ran device work for us (the EventLoop's), if any.
  std::atomic<std::thread::id> loopThread_{};

  // EventLoop-thread state.
  std::vector<VirtQueue> queues_;
  std::vector<unsigned> chainBudget_;  // per queue, refilled when its notification runs
  bool active_ = false;
  bool failed_ = false;
  bool held_ = false;
  uint64_t activeEpoch_ = 0;
};

}  // namespace strata::virtio
