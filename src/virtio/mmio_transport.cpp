#include "virtio/mmio_transport.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include <fmt/core.h>

#include "base/log.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio {

VirtioMmioTransport::VirtioMmioTransport(std::string name, const machine::GuestRam& ram, machine::IrqLine& irq,
                                         EventLoop& loop, VirtioDevice& device, Options options)
    : name_(std::move(name)),
      ram_(ram),
      irq_(irq),
      loop_(loop),
      device_(device),
      options_(options),
      // Notifications are tracked in a 64-bit mask; no device of ours has more queues.
      queueCount_(std::min(device.queueCount(), 64u)),
      queueRegs_(queueCount_),
      queues_(queueCount_),
      chainBudget_(queueCount_, kChainBudgetPerRun) {
  device_.attachHost(this);
}

VirtioMmioTransport::~VirtioMmioTransport() = default;

uint64_t VirtioMmioTransport::offeredFeatures() const {
  uint64_t features = device_.deviceFeatures() | featureBit(kFeatureVersion1);
  if (options_.offerEventIdx) features |= featureBit(kFeatureEventIdx);
  if (options_.offerIndirectDescriptors) features |= featureBit(kFeatureIndirectDesc);
  return features;
}

uint64_t VirtioMmioTransport::read(uint64_t offset, unsigned size) {
  if (offset >= mmio::kConfig) {
    if (size > 8) return 0;
    uint8_t bytes[8] = {};
    device_.readConfig(offset - mmio::kConfig, bytes, size);
    uint64_t value = 0;
    std::memcpy(&value, bytes, size);  // little-endian guest and host
    return value;
  }
  // The register block only takes aligned 32-bit accesses (spec 4.2.2.2).
  if (size != 4 || offset % 4 != 0) return 0;
  std::lock_guard lock(mutex_);
  return readRegister(offset);
}

void VirtioMmioTransport::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset >= mmio::kConfig) {
    if (size > 8) return;
    uint8_t bytes[8];
    std::memcpy(bytes, &value, 8);
    device_.writeConfig(offset - mmio::kConfig, bytes, size);
    return;
  }
  if (size != 4 || offset % 4 != 0) return;
  if (offset == mmio::kStatus && static_cast<uint32_t>(value) == 0) {
    resetFromDriver();
    return;
  }
  std::lock_guard lock(mutex_);
  writeRegister(offset, static_cast<uint32_t>(value));
}

void VirtioMmioTransport::resetFromDriver() {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> resetDone = done->get_future();
  {
    std::lock_guard lock(mutex_);
    // The registers read as reset at once; the device's own state is reset on
    // the loop, ahead of anything the driver does next (tasks run in order).
    resetRegisters();
    irq_.setLevel(false);
    epoch_.fetch_add(1);
    loop_.post([this, done] {
      resetOnLoop();
      device_.whenIdle([done] { done->set_value(); });
    });
  }
  // Wait until the loop ran the reset and the backend finished the requests
  // started before it (as QEMU drains the block device on reset), so neither a
  // device callback nor a late read can touch rings or buffers the driver is
  // about to reuse. Not when we are the loop thread (or it never ran device
  // work: nothing can be running); not past the loop's end (the VM stops).
  std::thread::id loopThread = loopThread_.load();
  if (loopThread == std::thread::id() || loopThread == std::this_thread::get_id()) return;
  const auto started = std::chrono::steady_clock::now();
  bool warned = false;
  while (resetDone.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (loop_.stopped()) return;
    if (!warned && std::chrono::steady_clock::now() - started > std::chrono::seconds(2)) {
      log::warnRateLimited("{}: device reset is waiting for the backend to finish requests started before it", name_);
      warned = true;
    }
  }
}

uint32_t VirtioMmioTransport::readRegister(uint64_t offset) {
  bool queueValid = queueSel_ < queueCount_;
  const QueueRegisters* q = queueValid ? &queueRegs_[queueSel_] : nullptr;
  switch (offset) {
    case mmio::kMagicValue: return mmio::kMagic;
    case mmio::kVersion: return mmio::kVersion2;
    case mmio::kDeviceId: return device_.deviceId();
    case mmio::kVendorId: return mmio::kStrataVendorId;
    case mmio::kDeviceFeatures:
      if (deviceFeaturesSel_ > 1) return 0;
      return static_cast<uint32_t>(offeredFeatures() >> (32 * deviceFeaturesSel_));
    case mmio::kQueueNumMax: return queueValid ? device_.queueMaxSize(queueSel_) : 0;
    case mmio::kQueueNum: return q ? q->num : 0;
    case mmio::kQueueReady: return q ? q->ready : 0;
    case mmio::kInterruptStatus: return interruptStatus_;
    case mmio::kStatus: return status_;
    case mmio::kQueueDescLow: return q ? static_cast<uint32_t>(q->desc) : 0;
    case mmio::kQueueDescHigh: return q ? static_cast<uint32_t>(q->desc >> 32) : 0;
    case mmio::kQueueDriverLow: return q ? static_cast<uint32_t>(q->driver) : 0;
    case mmio::kQueueDriverHigh: return q ? static_cast<uint32_t>(q->driver >> 32) : 0;
    case mmio::kQueueDeviceLow: return q ? static_cast<uint32_t>(q->device) : 0;
    case mmio::kQueueDeviceHigh: return q ? static_cast<uint32_t>(q->device >> 32) : 0;
    // No shared memory regions: a missing region reads as length -1 (spec 4.2.2).
    case mmio::kShmLenLow:
    case mmio::kShmLenHigh:
    case mmio::kShmBaseLow:
    case mmio::kShmBaseHigh: return 0xffffffffu;
    case mmio::kConfigGeneration: return configGeneration_;
    default: return 0;
  }
}

void VirtioMmioTransport::writeRegister(uint64_t offset, uint32_t value) {
  // Queue layout may only change while the queue is not live.
  bool driverOk = status_ & kStatusDriverOk;
  QueueRegisters* q = queueSel_ < queueCount_ ? &queueRegs_[queueSel_] : nullptr;
  QueueRegisters* editable = (q && !q->ready && !driverOk) ? q : nullptr;
  auto setLow = [](uint64_t& field, uint32_t v) { field = (field & ~0xffffffffull) | v; };
  auto setHigh = [](uint64_t& field, uint32_t v) { field = (field & 0xffffffffull) | (uint64_t{v} << 32); };

  switch (offset) {
    case mmio::kDeviceFeaturesSel: deviceFeaturesSel_ = value; break;
    case mmio::kDriverFeatures:
      // Features are frozen once FEATURES_OK is set (spec 3.1.1).
      if (status_ & kStatusFeaturesOk) break;
      if (driverFeaturesSel_ == 0) setLow(driverFeatures_, value);
      else if (driverFeaturesSel_ == 1) setHigh(driverFeatures_, value);
      break;
    case mmio::kDriverFeaturesSel: driverFeaturesSel_ = value; break;
    case mmio::kQueueSel: queueSel_ = value; break;
    case mmio::kQueueNum:
      if (editable) editable->num = value;
      break;
    case mmio::kQueueReady:
      if (q && !driverOk) q->ready = value & 1;
      else if (q && driverOk && (value & 1) != q->ready)
        log::debug("{}: driver toggled QueueReady of queue {} after DRIVER_OK; ignored", name_, queueSel_);
      break;
    case mmio::kQueueNotify:
      if (value < queueCount_ && driverOk) postNotify(value);
      break;
    case mmio::kInterruptAck:
      interruptStatus_ &= ~value;
      if (interruptStatus_ == 0) irq_.setLevel(false);
      break;
    case mmio::kStatus: writeStatus(value); break;
    case mmio::kQueueDescLow: if (editable) setLow(editable->desc, value); break;
    case mmio::kQueueDescHigh: if (editable) setHigh(editable->desc, value); break;
    case mmio::kQueueDriverLow: if (editable) setLow(editable->driver, value); break;
    case mmio::kQueueDriverHigh: if (editable) setHigh(editable->driver, value); break;
    case mmio::kQueueDeviceLow: if (editable) setLow(editable->device, value); break;
    case mmio::kQueueDeviceHigh: if (editable) setHigh(editable->device, value); break;
    default: break;
  }
}

void VirtioMmioTransport::resetRegisters() {
  status_ = 0;
  deviceFeaturesSel_ = 0;
  driverFeaturesSel_ = 0;
  driverFeatures_ = 0;
  queueSel_ = 0;
  std::fill(queueRegs_.begin(), queueRegs_.end(), QueueRegisters{});
  interruptStatus_ = 0;
}

void VirtioMmioTransport::writeStatus(uint32_t value) {
  // Only a reset clears status bits (virtio 1.2, 2.1.2: the driver MUST NOT). Were
  // DRIVER_OK cleared and set again, the rings would be re-activated from index 0
  // under work still in flight; keep every bit instead.
  if (uint32_t cleared = status_ & ~value & ~kStatusDeviceNeedsReset; cleared != 0) {
    log::warnRateLimited("{}: driver cleared status bits {:#x} without a reset; kept", name_, cleared);
    value |= cleared;
  }
  uint32_t newlySet = value & ~status_;
  if (newlySet & kStatusFeaturesOk) {
    uint64_t offered = offeredFeatures();
    uint64_t unknown = driverFeatures_ & ~offered;
    if (unknown != 0 || !(driverFeatures_ & featureBit(kFeatureVersion1))) {
      // Leaving FEATURES_OK clear tells the driver the subset is unacceptable.
      log::warnRateLimited("{}: rejecting driver features {:#x} (offered {:#x}{})", name_, driverFeatures_, offered,
                unknown ? "" : ", VERSION_1 is required");
      value &= ~kStatusFeaturesOk;
      newlySet &= ~kStatusFeaturesOk;
    }
  }
  // DEVICE_NEEDS_RESET is the device's to set and only a reset clears it.
  status_ = (value & ~kStatusDeviceNeedsReset) | (status_ & kStatusDeviceNeedsReset);
  if ((newlySet & kStatusDriverOk) && (status_ & kStatusFeaturesOk)) postActivation();
}

void VirtioMmioTransport::postActivation() {
  uint64_t epoch = epoch_.load();
  loop_.post([this, epoch, features = driverFeatures_, queues = queueRegs_]() mutable {
    activateOnLoop(epoch, features, std::move(queues));
  });
}

void VirtioMmioTransport::postNotify(unsigned q) {
  uint64_t bit = uint64_t{1} << q;
  if (pendingNotify_.fetch_or(bit) == 0) loop_.post([this] { drainNotifications(); });
}

void VirtioMmioTransport::raiseInterrupt(uint32_t bits) {
  interruptStatus_ |= bits;
  irq_.setLevel(true);
}

void VirtioMmioTransport::activateOnLoop(uint64_t epoch, uint64_t features, std::vector<QueueRegisters> queues) {
  loopThread_ = std::this_thread::get_id();
  if (epoch != epoch_.load()) return;  // reset again before we got here
  activeEpoch_ = epoch;
  failed_ = false;
  device_.bumpGeneration();
  bool indirect = features & featureBit(kFeatureIndirectDesc);
  bool eventIdx = features & featureBit(kFeatureEventIdx);
  for (unsigned i = 0; i < queueCount_; ++i) {
    queues_[i].disable();
    if (!queues[i].ready) continue;
    if (queues[i].num > device_.queueMaxSize(i)) {
      failDevice(fmt::format("queue {}: size {} exceeds the maximum {}", i, queues[i].num, device_.queueMaxSize(i)));
      return;
    }
    QueueLayout layout{static_cast<uint16_t>(queues[i].num), queues[i].desc, queues[i].driver, queues[i].device};
    if (auto configured = queues_[i].configure(ram_, layout, indirect, eventIdx); !configured) {
      failDevice(fmt::format("queue {}: {}", i, configured.error().message));
      return;
    }
  }
  active_ = true;
  device_.activate(features);
  // Buffers the driver posted before DRIVER_OK (e.g. RX buffers) get looked at now.
  for (unsigned i = 0; i < queueCount_ && !failed_; ++i) {
    if (!queues_[i].enabled()) continue;
    chainBudget_[i] = kChainBudgetPerRun;
    device_.onQueueNotify(i);
  }
}

void VirtioMmioTransport::resetOnLoop() {
  active_ = false;
  failed_ = false;
  for (auto& q : queues_) q.disable();
  device_.bumpGeneration();
  device_.reset();
}

void VirtioMmioTransport::holdQueues(bool held) {
  held_ = held;
  if (!held && pendingNotify_.load() != 0) loop_.post([this] { drainNotifications(); });
}

void VirtioMmioTransport::drainNotifications() {
  loopThread_ = std::this_thread::get_id();
  if (held_) return;  // the pending bits stay for holdQueues(false)
  uint64_t pending = pendingNotify_.exchange(0);
  if (!active_ || failed_ || activeEpoch_ != epoch_.load()) return;
  for (unsigned i = 0; i < queueCount_ && !failed_; ++i) {
    if (!((pending >> i) & 1) || !queues_[i].enabled()) continue;
    chainBudget_[i] = kChainBudgetPerRun;
    device_.onQueueNotify(i);
  }
}

bool VirtioMmioTransport::takeChainBudget(unsigned q) {
  if (q >= queueCount_) return false;
  if (held_) {
    pendingNotify_.fetch_or(uint64_t{1} << q);  // looked at again when released
    return false;
  }
  if (chainBudget_[q] == 0) {
    // The rest waits behind whatever else the loop has to do.
    postNotify(q);
    return false;
  }
  --chainBudget_[q];
  return true;
}

void VirtioMmioTransport::notifyUsed(unsigned queueIndex) {
  if (queueIndex >= queueCount_ || !active_ || failed_) return;
  if (!queues_[queueIndex].shouldInterrupt()) return;
  std::lock_guard lock(mutex_);
  if (epoch_.load() != activeEpoch_) return;
  raiseInterrupt(kInterruptUsedBuffer);
}

void VirtioMmioTransport::failDevice(const std::string& reason) {
  if (failed_) return;
  failed_ = true;
  std::lock_guard lock(mutex_);
  if (epoch_.load() != activeEpoch_) return;  // the driver already reset the device
  log::warnRateLimited("{}: guest driver error, device stopped until reset: {}", name_, reason);
  status_ |= kStatusDeviceNeedsReset;
  raiseInterrupt(kInterruptConfigChange);
}

void VirtioMmioTransport::notifyConfigChange() {
  std::lock_guard lock(mutex_);
  ++configGeneration_;
  if (status_ & kStatusDriverOk) raiseInterrupt(kInterruptConfigChange);
}

}  // namespace strata::virtio
