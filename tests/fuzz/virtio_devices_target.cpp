// virtio-blk, -net, -console and -rng end to end: a program of guest actions
// against the FuzzBoard. Each operation is one byte (its value modulo the
// operation count) followed by its operands:
//   RamWrite     offset u32, length u8, bytes            guest RAM at offset (wrapped)
//   RegWrite     slot u8, offset u16, value u32           a transport register
//   RegRead      slot u8, offset u16, size u8             register or config space
//   Setup        slot u8, feature mask u64, flags u8, size u8 x2, [3 x u64 per queue]
//                a driver's whole initialisation, ending in DRIVER_OK
//                (flags bit 0: raw queue sizes; bit 1: ring addresses follow;
//                 bit 2: do not force VERSION_1)
//   Descriptor   slot u8, queue u8, index u16, addr u32, len u32, flags u8, next u16
//   Post         slot u8, queue u8, head u16, flags u16, used_event u16
//   Notify       slot u8, queue u8
//   RunLoop      turns u8
//   Backend      kind u8, then kind's operands (console input, a frame from
//                the network, disk completions held/released/failing, loopback)
//   Reset        slot u8                                  Status = 0
// Rings set up by Setup sit at fixed places (8 KiB per queue from the RAM base)
// unless their addresses are given; Descriptor and Post write into them.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz_board.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "machine/virt_layout.h"
#include "virtio/virtio_spec.h"

namespace strata::fuzz {

namespace {

using namespace virtio;

enum Op : uint8_t { kRamWrite, kRegWrite, kRegRead, kSetup, kDescriptor, kPost, kNotify, kRunLoop, kBackend, kReset, kOps };

constexpr unsigned kQueuesPerSlot = 2;
constexpr uint64_t kRingAreaBytes = 8 * 1024;

struct Ring {
  uint16_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;
  uint16_t availIdx = 0;
};

class VirtioProgram {
 public:
  explicit VirtioProgram(FuzzBoard& board) : board_(board) {}

  void run(FuzzInput& input) {
    while (!input.empty()) {
      switch (input.u8() % kOps) {
        case kRamWrite: ramWrite(input); break;
        case kRegWrite: {
          unsigned slot = input.u8() % FuzzBoard::kVirtioCount;
          uint64_t offset = input.u16() % mmio::kWindowSize;
          writeRegister(slot, offset & ~uint64_t{3}, input.u32());
          break;
        }
        case kRegRead: {
          unsigned slot = input.u8() % FuzzBoard::kVirtioCount;
          uint64_t offset = input.u16() % mmio::kWindowSize;
          unsigned width = 1u << (input.u8() % 4);
          uint64_t value = 0;
          (void)board_.mmioRead(base(slot) + (offset & ~uint64_t{width - 1}), width, value);
          break;
        }
        case kSetup: setup(input); break;
        case kDescriptor: descriptor(input); break;
        case kPost: post(input); break;
        case kNotify: {
          unsigned slot = input.u8() % FuzzBoard::kVirtioCount;
          writeRegister(slot, mmio::kQueueNotify, input.u8() % 4);
          break;
        }
        case kRunLoop: board_.runLoop(1 + input.u8() % 8); break;
        case kBackend: backend(input); break;
        case kReset: writeRegister(input.u8() % FuzzBoard::kVirtioCount, mmio::kStatus, 0); break;
      }
    }
    board_.disk().releaseHeld();
    board_.runLoop(16);
    if (std::getenv("STRATA_FUZZ_DEBUG")) report();
  }

 private:
  static uint64_t base(unsigned slot) { return machine::virt::virtioSlotBase(slot); }
  void writeRegister(unsigned slot, uint64_t offset, uint32_t value) { (void)board_.mmioWrite(base(slot) + offset, 4, value); }
  uint32_t readRegister(unsigned slot, uint64_t offset) {
    uint64_t value = 0;
    (void)board_.mmioRead(base(slot) + offset, 4, value);
    return static_cast<uint32_t>(value);
  }
  uint8_t* ram(uint64_t gpa, uint64_t length) { return board_.ram().translate(gpa, length); }
  template <typename T>
  void store(uint64_t gpa, T value) {
    if (uint8_t* host = ram(gpa, sizeof value)) std::memcpy(host, &value, sizeof value);
  }

  void ramWrite(FuzzInput& input) {
    uint64_t offset = input.u32() % FuzzBoard::kRamBytes;
    auto bytes = input.bytes(input.u8());
    size_t length = std::min<uint64_t>(bytes.size(), FuzzBoard::kRamBytes - offset);
    if (length > 0) std::memcpy(board_.ram().hostBase() + offset, bytes.data(), length);
  }

  // What a virtio-mmio driver does at probe: reset, ACKNOWLEDGE, DRIVER,
  // features, FEATURES_OK, each queue's size and rings, DRIVER_OK.
  void setup(FuzzInput& input) {
    unsigned slot = input.u8() % FuzzBoard::kVirtioCount;
    uint64_t mask = input.u64();
    uint8_t flags = input.u8();
    writeRegister(slot, mmio::kStatus, 0);
    writeRegister(slot, mmio::kStatus, kStatusAcknowledge);
    writeRegister(slot, mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    uint64_t offered = 0;
    for (uint32_t half = 0; half < 2; ++half) {
      writeRegister(slot, mmio::kDeviceFeaturesSel, half);
      offered |= uint64_t{readRegister(slot, mmio::kDeviceFeatures)} << (32 * half);
    }
    uint64_t features = offered & mask;
    if (!(flags & 4)) features |= featureBit(kFeatureVersion1);
    for (uint32_t half = 0; half < 2; ++half) {
      writeRegister(slot, mmio::kDriverFeaturesSel, half);
      writeRegister(slot, mmio::kDriverFeatures, static_cast<uint32_t>(features >> (32 * half)));
    }
    writeRegister(slot, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    for (unsigned q = 0; q < kQueuesPerSlot; ++q) {
      uint8_t sizeByte = input.u8();
      Ring ring;
      ring.size = (flags & 1) ? sizeByte : static_cast<uint16_t>(1u << (sizeByte % 9));
      uint64_t area = board_.ram().base() + (slot * kQueuesPerSlot + q) * kRingAreaBytes;
      ring.desc = area;
      ring.avail = area + 4096;
      ring.used = area + 4864;
      if (flags & 2) {
        ring.desc = input.u64();
        ring.avail = input.u64();
        ring.used = input.u64();
      }
      rings_[slot][q] = ring;
      writeRegister(slot, mmio::kQueueSel, q);
      writeRegister(slot, mmio::kQueueNum, ring.size);
      writeRegister(slot, mmio::kQueueDescLow, static_cast<uint32_t>(ring.desc));
      writeRegister(slot, mmio::kQueueDescHigh, static_cast<uint32_t>(ring.desc >> 32));
      writeRegister(slot, mmio::kQueueDriverLow, static_cast<uint32_t>(ring.avail));
      writeRegister(slot, mmio::kQueueDriverHigh, static_cast<uint32_t>(ring.avail >> 32));
      writeRegister(slot, mmio::kQueueDeviceLow, static_cast<uint32_t>(ring.used));
      writeRegister(slot, mmio::kQueueDeviceHigh, static_cast<uint32_t>(ring.used >> 32));
      writeRegister(slot, mmio::kQueueReady, 1);
      // A fresh ring: the driver zeroes what it allocated.
      if (uint8_t* avail = ram(ring.avail, 4)) std::memset(avail, 0, 4);
      if (uint8_t* used = ram(ring.used, 4)) std::memset(used, 0, 4);
    }
    writeRegister(slot, mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  }

  Ring& ring(FuzzInput& input) {
    unsigned slot = input.u8() % FuzzBoard::kVirtioCount;
    return rings_[slot][input.u8() % kQueuesPerSlot];
  }

  // Addresses are RAM offsets that may run a page past its end.
  void descriptor(FuzzInput& input) {
    Ring& r = ring(input);
    uint16_t index = input.u16();
    uint64_t addr = board_.ram().base() + input.u32() % (FuzzBoard::kRamBytes + 4096);
    uint32_t len = input.u32();
    uint16_t flags = input.u8() & 7;
    uint16_t next = input.u16();
    if (r.size == 0) return;
    uint64_t at = r.desc + static_cast<uint64_t>(index % r.size) * 16;
    store(at, addr);
    store(at + 8, len);
    store(at + 12, flags);
    store(at + 14, next);
  }

  // Puts a head on the available ring and publishes it (avail flags and
  // used_event, which EVENT_IDX reads, come along).
  void post(FuzzInput& input) {
    Ring& r = ring(input);
    uint16_t head = input.u16();
    uint16_t flags = input.u16() & 1;
    uint16_t usedEvent = input.u16();
    if (r.size == 0) return;
    store(r.avail + 4 + static_cast<uint64_t>(r.availIdx % r.size) * 2, head);
    store(r.avail + 4 + uint64_t{r.size} * 2, usedEvent);
    store(r.avail, flags);
    ++r.availIdx;
    store(r.avail + 2, r.availIdx);
  }

  void backend(FuzzInput& input) {
    auto& disk = board_.disk();
    switch (input.u8() % 6) {
      case 0: {
        auto bytes = input.bytes(input.u8());
        board_.console().pushInput(bytes);
        break;
      }
      case 1: {
        size_t length = input.u16() % 2048;
        auto frame = input.bytes(length);
        frame.resize(length);
        board_.port().deliver(std::move(frame));
        break;
      }
      case 2: disk.holdCompletions = !disk.holdCompletions; break;
      case 3: {
        // Out of order: newest first.
        std::vector<size_t> order;
        for (size_t i = disk.heldCount(); i > 0; --i) order.push_back(i - 1);
        disk.releaseHeld(order);
        break;
      }
      case 4:
        disk.failOffset = input.u16() * 512ull % FuzzBoard::kDiskBytes;
        disk.failLength = input.u16();
        break;
      case 5: board_.port().loopback = !board_.port().loopback; break;
    }
  }

  // What the program achieved, for checking by hand that a seed reaches the device.
  void report() {
    for (unsigned slot = 0; slot < FuzzBoard::kVirtioCount; ++slot)
      for (unsigned q = 0; q < kQueuesPerSlot; ++q) {
        const Ring& r = rings_[slot][q];
        uint8_t* used = r.size ? ram(r.used + 2, 2) : nullptr;
        if (!used) continue;
        uint16_t usedIdx;
        std::memcpy(&usedIdx, used, 2);
        std::fprintf(stderr, "slot %u queue %u: status %#x, %u posted, %u used\n", slot, q,
                     readRegister(slot, mmio::kStatus), r.availIdx, usedIdx);
      }
  }

  FuzzBoard& board_;
  Ring rings_[FuzzBoard::kVirtioCount][kQueuesPerSlot];
};

}  // namespace

int virtioDevicesOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  FuzzBoard board;
  FuzzInput input(data, size);
  VirtioProgram(board).run(input);
  return 0;
}

}  // namespace strata::fuzz
