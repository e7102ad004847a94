// VirtioConsole: the virtio console device (type 3) with a single port
// (no MULTIPORT): receiveq 0 carries input to the guest, transmitq 1 output
// from it. Input is buffered without bound, like a UART FIFO that never
// overflows, and handed over as the guest posts receive buffers.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "virtio/virtio_device.h"

namespace strata::virtio {

class VirtioConsole final : public VirtioDevice {
 public:
  using OutputHandler = std::function<void(std::span<const uint8_t> bytes)>;

  // output runs on the EventLoop thread with each chunk the guest writes.
  explicit VirtioConsole(OutputHandler output);

  uint32_t deviceId() const override;
  uint64_t deviceFeatures() const override { return 0; }
  unsigned queueCount() const override { return 2; }
  void activate(uint64_t features) override;
  void onQueueNotify(unsigned queue) override;
  void reset() override;
  // Host input not yet delivered to the guest survives a snapshot.
  void saveState(StateWriter& out) const override;
  void loadState(StateReader& in) override;

  // Queues input for the guest. Any thread, any time (input before the driver is ready waits).
  void pushInput(std::span<const uint8_t> bytes);

 private:
  static constexpr unsigned kReceiveQueue = 0;
  static constexpr unsigned kTransmitQueue = 1;
  void deliverInput();
  void transmit();

  OutputHandler output_;
  bool active_ = false;
  mutable std::mutex inputMutex_;
  std::deque<uint8_t> input_;
  std::atomic<bool> deliveryPosted_{false};
};

}  // namespace strata::virtio
