// Register accesses to every device of the board, delivered the way a hart
// delivers them (Bus, naturally aligned, value masked to the access size).
// Input: a sequence of operations, each one byte [write:1][size:2][what:4]
// followed by its operands: for a device (what 0-9: PLIC, CLINT, UART, RTC,
// pvpanic, test, virtio slots 0-3) an offset (u32, wrapped to the device's
// window) and, for writes, a value (u64); 10: advance the clocks (u16 ticks);
// 11: turn the I/O loop; 12: host input for the UART (u8 length, bytes);
// 13: poll the RTC alarm.
#include "fuzz_board.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "machine/virt_layout.h"

namespace strata::fuzz {

namespace {

struct Window {
  uint64_t base;
  uint64_t size;
};

constexpr unsigned kDeviceWindows = 10;

Window window(unsigned device) {
  using namespace machine::virt;
  switch (device) {
    case 0: return {kPlicBase, kPlicSize};
    case 1: return {kClintBase, kClintSize};
    case 2: return {kUartBase, kUartSize};
    case 3: return {kRtcBase, kRtcSize};
    case 4: return {kPvPanicBase, kPvPanicSize};
    case 5: return {kTestBase, kTestSize};
    default: return {virtioSlotBase(device - 6), kVirtioStride};
  }
}

}  // namespace

int boardMmioOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  FuzzBoard board;
  FuzzInput input(data, size);
  while (!input.empty()) {
    uint8_t op = input.u8();
    unsigned what = op & 0x0f;
    unsigned width = 1u << ((op >> 4) & 3);
    bool write = op & 0x40;
    if (what < kDeviceWindows) {
      Window w = window(what);
      uint64_t pa = (w.base + input.u32() % w.size) & ~uint64_t{width - 1};
      if (write) {
        uint64_t value = input.u64();
        if (width < 8) value &= (uint64_t{1} << (8 * width)) - 1;
        (void)board.mmioWrite(pa, width, value);
      } else {
        uint64_t value = 0;
        (void)board.mmioRead(pa, width, value);
      }
    } else if (what == 10) {
      board.advanceClock(input.u16());
    } else if (what == 11) {
      board.runLoop(4);
    } else if (what == 12) {
      auto bytes = input.bytes(input.u8());
      board.uart().pushInput(bytes.data(), bytes.size());
    } else if (what == 13) {
      board.rtc().pollAlarm();
    }
  }
  board.runLoop(4);
  return 0;
}

}  // namespace strata::fuzz
