// FuzzBoard: the `virt` board's devices wired as GuestMachine wires them (PLIC,
// CLINT, UART, RTC, pvpanic, test finisher, virtio-blk/-net/-console/-rng/-balloon
// on slots 0-4, all on one Bus over a small GuestRam), with deterministic fakes
// where the board meets the host: hart lines, clocks, an in-memory disk, a
// packet port that loops frames back or swallows them. Built fresh per input;
// everything runs on the calling thread, which also turns the EventLoop.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "machine/bus.h"
#include "machine/clint.h"
#include "machine/goldfish_rtc.h"
#include "machine/guest_ram.h"
#include "machine/plic.h"
#include "machine/pvpanic.h"
#include "machine/sifive_test.h"
#include "machine/uart16550.h"
#include "memory_block_device.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/mmio_transport.h"
#include "virtio/net.h"
#include "virtio/rng.h"

namespace strata::fuzz {

// A PacketPort whose sent frames come back as received ones (through the loop)
// while loopback is on, and are dropped otherwise.
class LoopbackPort final : public virtio::PacketPort {
 public:
  explicit LoopbackPort(EventLoop& loop) : loop_(loop) {}
  void send(std::span<const uint8_t> frame, const network::FrameOffload& offload) override;
  void setReceiveHandler(ReceiveHandler handler) override { handler_ = std::move(handler); }
  void setReceiveEnabled(bool enabled) override { receiveEnabled_ = enabled; }
  // A frame from the outside; held back (like a TAP queue) while receiving is disabled.
  void deliver(std::vector<uint8_t> frame);

  bool loopback = true;

 private:
  void drainHeld();
  EventLoop& loop_;
  ReceiveHandler handler_;
  bool receiveEnabled_ = true;
  std::vector<std::vector<uint8_t>> held_;
};

class FuzzBoard {
 public:
  static constexpr uint64_t kRamBytes = 256 * 1024;
  static constexpr uint64_t kDiskBytes = 64 * 1024;
  static constexpr unsigned kHarts = 2;
  enum VirtioSlot : unsigned { kBlk, kNet, kConsole, kRng, kBalloon, kVirtioCount };

  FuzzBoard();
  ~FuzzBoard();
  FuzzBoard(const FuzzBoard&) = delete;
  FuzzBoard& operator=(const FuzzBoard&) = delete;

  machine::GuestRam& ram() { return *ram_; }
  EventLoop& loop() { return *loop_; }
  storage::testing::MemoryBlockDevice& disk() { return *disk_; }
  LoopbackPort& port() { return *port_; }
  virtio::VirtioConsole& console() { return *console_; }
  virtio::VirtioMmioTransport& transport(unsigned slot) { return *transports_[slot]; }
  machine::Uart16550& uart() { return *uart_; }
  machine::GoldfishRtc& rtc() { return *rtc_; }

  // A hart's register write. A driver reset of a virtio device (Status = 0)
  // blocks the writing vCPU until the I/O loop has reset the device; with the
  // loop on this same thread, that wait is one loop turn here.
  bool mmioWrite(uint64_t pa, unsigned size, uint64_t value);
  bool mmioRead(uint64_t pa, unsigned size, uint64_t& value) { return bus_.mmioRead(pa, size, value); }

  // Runs ready loop work until none is left or `turns` loop iterations passed.
  void runLoop(unsigned turns);
  // Advances the fake clocks the CLINT and the RTC read.
  void advanceClock(uint64_t ticks) { clock_ += ticks; }

 private:
  class FakeClintTarget;

  uint64_t clock_ = 0;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<machine::GuestRam> ram_;
  machine::Bus bus_;
  std::array<std::array<bool, 16>, kHarts> hartLines_{};
  std::vector<std::unique_ptr<FakeClintTarget>> clintTargets_;
  std::unique_ptr<machine::Plic> plic_;
  std::unique_ptr<machine::Clint> clint_;
  std::unique_ptr<machine::Uart16550> uart_;
  std::unique_ptr<machine::GoldfishRtc> rtc_;
  std::unique_ptr<machine::PvPanic> pvpanic_;
  std::unique_ptr<machine::SifiveTest> test_;
  std::unique_ptr<storage::testing::MemoryBlockDevice> disk_;
  std::unique_ptr<LoopbackPort> port_;
  std::unique_ptr<virtio::VirtioBlk> blk_;
  std::unique_ptr<virtio::VirtioNet> net_;
  std::unique_ptr<virtio::VirtioConsole> console_;
  std::unique_ptr<virtio::VirtioRng> rng_;
  std::unique_ptr<virtio::VirtioBalloon> balloon_;
  std::array<std::unique_ptr<virtio::VirtioMmioTransport>, kVirtioCount> transports_;
  uint64_t sink_ = 0;  // output bytes go here, so nothing the guest sends is optimised away
};

}  // namespace strata::fuzz
