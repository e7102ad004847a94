#include "virtio/console.h"

#include <algorithm>
#include <vector>

#include "virtio/iovec_util.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio {

VirtioConsole::VirtioConsole(OutputHandler output) : output_(std::move(output)) {
  // struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr (all unused without features).
  setConfigSpace(std::vector<uint8_t>(12, 0));
}

uint32_t VirtioConsole::deviceId() const { return kDeviceIdConsole; }

void VirtioConsole::activate(uint64_t) { active_ = true; }

void VirtioConsole::reset() { active_ = false; }  // pending input survives for the next driver

void VirtioConsole::onQueueNotify(unsigned queue) {
  if (queue == kReceiveQueue) deliverInput();
  else if (queue == kTransmitQueue) transmit();
}

void VirtioConsole::pushInput(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  {
    std::lock_guard lock(inputMutex_);
    input_.insert(input_.end(), bytes.begin(), bytes.end());
  }
  if (!attached()) return;  // kept until a transport hosts us and the driver posts buffers
  // One delivery task at a time is enough; it drains everything queued so far.
  if (!deliveryPosted_.exchange(true)) {
    host().loop().post([this] {
      deliveryPosted_ = false;
      deliverInput();
    });
  }
}

void VirtioConsole::deliverInput() {
  if (!active_) return;
  bool delivered = false;
  std::vector<uint8_t> chunk;
  for (;;) {
    {
      std::lock_guard lock(inputMutex_);
      if (input_.empty()) break;
    }
    auto chain = popChain(kReceiveQueue);
    if (!chain) break;
    {
      std::lock_guard lock(inputMutex_);
      size_t n = static_cast<size_t>(std::min<uint64_t>(chain->writableBytes, input_.size()));
      chunk.assign(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(n));
      input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    copyToIovecs(chain->writable, 0, chunk.data(), chunk.size());
    host().queue(kReceiveQueue).pushUsed(chain->head, static_cast<uint32_t>(chunk.size()));
    delivered = true;
  }
  if (delivered) host().notifyUsed(kReceiveQueue);
}

void VirtioConsole::transmit() {
  bool completed = false;
  std::vector<uint8_t> bytes;
  while (auto chain = popChain(kTransmitQueue)) {
    // Cap one chunk so a hostile chain cannot make us allocate gigabytes.
    constexpr uint64_t kMaxChunk = 1 << 20;
    bytes.resize(static_cast<size_t>(std::min(chain->readableBytes, kMaxChunk)));
    copyFromIovecs(chain->readable, 0, bytes.data(), bytes.size());
    if (output_ && !bytes.empty()) output_(bytes);
    host().queue(kTransmitQueue).pushUsed(chain->head, 0);
    completed = true;
  }
  if (completed) host().notifyUsed(kTransmitQueue);
}

void VirtioConsole::saveState(StateWriter& out) const {
  std::lock_guard lock(inputMutex_);
  out.putBytes(std::vector<uint8_t>(input_.begin(), input_.end()));
}

void VirtioConsole::loadState(StateReader& in) {
  constexpr size_t kMaxSavedInput = 1u << 20;
  std::vector<uint8_t> input = in.getBytes(kMaxSavedInput);
  std::lock_guard lock(inputMutex_);
  input_.assign(input.begin(), input.end());
}

}  // namespace strata::virtio
