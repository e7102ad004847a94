// VirtioDevice: what a virtio device type (blk, net, console, rng) implements,
// independent of the transport that exposes it to the guest; and VirtioHost,
// the services the transport gives the device (its queues, interrupts, failure).
// Thread model: config-space reads/writes run on vCPU threads; everything else
// (activate, reset, queue notifications, backend completions) on the VM's
// EventLoop thread.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/state_stream.h"
#include "virtio/virtqueue.h"

namespace strata::virtio {

// Chains one queue may pop per notification run. Past it the transport posts
// the queue's notification again, so a queue the guest keeps full gives way to
// other devices' work and to backend completions on the I/O thread.
inline constexpr unsigned kChainBudgetPerRun = 64;

class VirtioHost {
 public:
  virtual ~VirtioHost() = default;
  // All of these are for the EventLoop thread only.
  virtual VirtQueue& queue(unsigned index) = 0;
  // Raises the used-buffer interrupt if the queue's driver wants one now.
  virtual void notifyUsed(unsigned queueIndex) = 0;
  // Marks the device broken (DEVICE_NEEDS_RESET) after invalid guest input.
  virtual void failDevice(const std::string& reason) = 0;
  virtual bool deviceFailed() const = 0;
  virtual void notifyConfigChange() = 0;
  // Spends one unit of queue q's budget for this run; false (and the queue's
  // notification re-posted to the loop) when it is used up.
  virtual bool takeChainBudget(unsigned q) = 0;
  // Any thread.
  virtual EventLoop& loop() = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual uint32_t deviceId() const = 0;
  // Device-type feature bits; the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX.
  virtual uint64_t deviceFeatures() const = 0;
  virtual unsigned queueCount() const = 0;
  virtual uint16_t queueMaxSize(unsigned /*queue*/) const { return 256; }

  // Device-specific configuration space (vCPU threads). Bytes past the end read as 0.
  void readConfig(uint64_t offset, uint8_t* out, unsigned size) const;
  // The default configuration space is read-only; writes are ignored.
  virtual void writeConfig(uint64_t /*offset*/, const uint8_t* /*data*/, unsigned /*size*/) {}

  // EventLoop thread. activate() runs once the driver set DRIVER_OK and the queues
  // are mapped; reset() when the driver resets the device (drop in-flight work).
  virtual void activate(uint64_t /*negotiatedFeatures*/) {}
  virtual void onQueueNotify(unsigned queue) = 0;
  virtual void reset() {}
  // Runs `idle` (now or later, on the loop) once no backend work started so far
  // can still write to guest memory. A reset waits for it: a read landing after
  // the reset would overwrite buffers the driver has reused by then.
  virtual void whenIdle(std::function<void()> idle) { idle(); }

  // Snapshots: state of the device itself beyond its transport and rings,
  // written inside the transport's section. Devices whose state is all in
  // their configuration and rings (blk and rng once idle) keep the defaults.
  virtual void saveState(StateWriter& /*out*/) const {}
  virtual void loadState(StateReader& /*in*/) {}

  // Called once by the transport that hosts this device.
  void attachHost(VirtioHost* host) { host_ = host; }

  // Bumped by the transport on every activation and reset; in-flight work
  // started under an older generation must not touch the (reconfigured) rings.
  uint64_t generation() const { return generation_; }
  void bumpGeneration() { ++generation_; }

 protected:
  VirtioHost& host() const { return *host_; }
  bool attached() const { return host_ != nullptr; }
  void setConfigSpace(std::vector<uint8_t> bytes);
  // Next chain of queue q, or nullopt when it is empty, the device failed, the
  // ring is malformed (the device is then failed with the reason), or the queue
  // used up its budget for this run (it is notified again later).
  std::optional<DescriptorChain> popChain(unsigned q);

 private:
  VirtioHost* host_ = nullptr;
  uint64_t generation_ = 0;
  mutable std::mutex configMutex_;
  std::vector<uint8_t> config_;
};

}  // namespace strata::virtio
