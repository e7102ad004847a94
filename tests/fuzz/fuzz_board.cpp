#include "fuzz_board.h"

#include <cstdlib>

#include "machine/virt_layout.h"

namespace strata::fuzz {

void LoopbackPort::send(std::span<const uint8_t> frame, const network::FrameOffload&) {
  if (loopback) deliver(std::vector<uint8_t>(frame.begin(), frame.end()));
}

void LoopbackPort::deliver(std::vector<uint8_t> frame) {
  held_.push_back(std::move(frame));
  // Delivered from the loop, as a TAP's frames are, never inside send().
  loop_.post([this] { drainHeld(); });
}

void LoopbackPort::drainHeld() {
  while (receiveEnabled_ && handler_ && !held_.empty()) {
    std::vector<uint8_t> frame = std::move(held_.front());
    held_.erase(held_.begin());
    handler_(frame, {});
  }
}

class FuzzBoard::FakeClintTarget final : public machine::ClintTarget {
 public:
  void setSoftwareInterrupt(bool level) override { softwareInterrupt_ = level; }
  void setTimerCompare(uint64_t value) override { compare_ = value; }
  uint64_t timerCompare() const override { return compare_; }

 private:
  bool softwareInterrupt_ = false;
  uint64_t compare_ = ~uint64_t{0};
};

FuzzBoard::FuzzBoard() {
  using namespace machine::virt;
  auto loop = EventLoop::create();
  auto ram = machine::GuestRam::create(kRamBase, kRamBytes);
  if (!loop || !ram) std::abort();  // the host is out of descriptors or memory: not a finding
  loop_ = std::move(*loop);
  ram_ = std::move(*ram);

  plic_ = std::make_unique<machine::Plic>(kHarts, kPlicSources, [this](unsigned hart, cpu::InterruptBit bit, bool level) {
    if (hart >= kHarts || bit >= hartLines_[hart].size()) std::abort();
    hartLines_[hart][bit] = level;
  });
  std::vector<machine::ClintTarget*> targets;
  for (unsigned i = 0; i < kHarts; ++i) {
    clintTargets_.push_back(std::make_unique<FakeClintTarget>());
    targets.push_back(clintTargets_.back().get());
  }
  clint_ = std::make_unique<machine::Clint>(targets, [this] { return clock_; });
  uart_ = std::make_unique<machine::Uart16550>(plic_->line(kUartIrq), [this](const uint8_t* data, size_t length) {
    for (size_t i = 0; i < length; ++i) sink_ += data[i];
  });
  rtc_ = std::make_unique<machine::GoldfishRtc>(plic_->line(kRtcIrq), [this] { return clock_ * 100; });
  pvpanic_ = std::make_unique<machine::PvPanic>([this] { ++sink_; });
  test_ = std::make_unique<machine::SifiveTest>([this](machine::SifiveTest::Request, uint16_t code) { sink_ += code; });

  disk_ = std::make_unique<storage::testing::MemoryBlockDevice>(*loop_, kDiskBytes);
  port_ = std::make_unique<LoopbackPort>(*loop_);
  blk_ = std::make_unique<virtio::VirtioBlk>(*disk_);
  net_ = std::make_unique<virtio::VirtioNet>(*port_, virtio::net::defaultMacAddress(0));
  console_ = std::make_unique<virtio::VirtioConsole>([this](std::span<const uint8_t> bytes) {
    for (uint8_t byte : bytes) sink_ += byte;
  });
  rng_ = std::make_unique<virtio::VirtioRng>();
  // Statistics only when asked: no timer, so a run depends on its input alone.
  balloon_ = std::make_unique<virtio::VirtioBalloon>(
      *ram_, virtio::VirtioBalloon::Options{.targetBytes = kRamBytes / 2, .statsInterval = std::chrono::milliseconds(0)});
  virtio::VirtioDevice* devices[kVirtioCount] = {blk_.get(), net_.get(), console_.get(), rng_.get(), balloon_.get()};
  const char* names[kVirtioCount] = {"virtio-blk0", "virtio-net0", "virtio-console", "virtio-rng", "virtio-balloon"};
  for (unsigned slot = 0; slot < kVirtioCount; ++slot)
    transports_[slot] = std::make_unique<virtio::VirtioMmioTransport>(names[slot], *ram_, plic_->line(kVirtioIrqFirst + slot),
                                                                      *loop_, *devices[slot]);

  bool mapped = bus_.map(kPlicBase, kPlicSize, plic_.get()) && bus_.map(kUartBase, kUartSize, uart_.get()) &&
                bus_.map(kRtcBase, kRtcSize, rtc_.get()) && bus_.map(kClintBase, kClintSize, clint_.get()) &&
                bus_.map(kPvPanicBase, kPvPanicSize, pvpanic_.get()) && bus_.map(kTestBase, kTestSize, test_.get());
  for (unsigned slot = 0; slot < kVirtioCount; ++slot)
    mapped = mapped && bus_.map(virtioSlotBase(slot), kVirtioStride, transports_[slot].get());
  if (!mapped) std::abort();
}

// Loop work still queued is dropped with the loop, before the devices it names go.
FuzzBoard::~FuzzBoard() { loop_.reset(); }

bool FuzzBoard::mmioWrite(uint64_t pa, unsigned size, uint64_t value) {
  bool mapped = bus_.mmioWrite(pa, size, value);
  uint64_t virtioEnd = machine::virt::virtioSlotBase(kVirtioCount);
  if (mapped && pa >= machine::virt::kVirtioBase && pa < virtioEnd &&
      (pa - machine::virt::kVirtioBase) % machine::virt::kVirtioStride == virtio::mmio::kStatus && size == 4 &&
      static_cast<uint32_t>(value) == 0)
    runLoop(1);
  return mapped;
}

void FuzzBoard::runLoop(unsigned turns) {
  for (unsigned i = 0; i < turns; ++i) loop_->runOnce(0);
}

}  // namespace strata::fuzz
