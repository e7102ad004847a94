// machine::Sbi answering ecalls from the harts of a small machine (no vCPU
// threads: the harts are idle, as between instructions). Input: hart count
// (1-4 from the first byte), then per call: the calling hart, an extension
// pick (one of SBI's, or a raw a7 that follows), a6, and a0-a5 as u64. The
// fake platform traps if SBI hands it guest memory outside RAM, and the
// harness if a hart mask is judged otherwise than the SBI spec says.
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "cpu/hart.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "machine/guest_ram.h"
#include "machine/sbi.h"
#include "machine/virt_layout.h"

namespace strata::fuzz {

namespace {

constexpr uint64_t kRamBytes = 64 * 1024;
constexpr unsigned kMaxHarts = 4;
// Legacy 0x00-0x08, then BASE, TIME, sPI, RFNC, HSM, SRST, DBCN.
constexpr uint64_t kExtensions[] = {0x00,     0x01,     0x02,       0x03,       0x04,       0x05,
                                    0x06,     0x07,     0x08,       0x10,       0x54494D45, 0x735049,
                                    0x52464E43, 0x48534D, 0x53525354, 0x4442434E};
constexpr size_t kExtensionCount = sizeof kExtensions / sizeof kExtensions[0];

void require(bool invariant) {
  if (!invariant) std::abort();
}

class FakePlatform final : public machine::SbiPlatform, public cpu::HartHost {
 public:
  // Harts are costly to make, so one set serves every input: each starts
  // again from the state a kernel is entered in, hart 0 running, the rest stopped.
  explicit FakePlatform(machine::GuestRam& ram) : ram_(ram) {
    cpu::PhysicalMemory memory{ram.base(), ram.size(), ram.hostBase(), nullptr};
    for (unsigned id = 0; id < kMaxHarts; ++id) allHarts_.push_back(std::make_unique<cpu::Hart>(id, memory, *this));
  }
  void reset(unsigned hartCount) {
    harts_.clear();
    for (unsigned id = 0; id < hartCount; ++id) {
      allHarts_[id]->resetToSupervisorBoot(ram_.base(), 0);
      harts_.push_back(allHarts_[id].get());
    }
    states_.assign(hartCount, machine::HartRunState::Stopped);
    states_[0] = machine::HartRunState::Started;
    pendingInput.assign({'o', 'k', '\n'});
  }

  // machine::SbiPlatform, with GuestMachine's rules for HSM.
  unsigned hartCount() const override { return static_cast<unsigned>(harts_.size()); }
  cpu::Hart& hart(unsigned id) override {
    require(id < harts_.size());
    return *harts_[id];
  }
  machine::HartRunState hartState(unsigned id) override {
    require(id < states_.size());
    return states_[id];
  }
  machine::SbiError startHart(unsigned id, uint64_t startAddress, uint64_t) override {
    require(id < states_.size());
    if (states_[id] != machine::HartRunState::Stopped) return machine::SbiError::AlreadyAvailable;
    if (!ram_.translate(startAddress, 4)) return machine::SbiError::InvalidAddress;
    states_[id] = machine::HartRunState::StartPending;
    return machine::SbiError::Success;
  }
  void resetSystem(machine::SystemResetKind, uint32_t) override { ++resets; }
  void consoleWrite(const uint8_t* data, size_t length) override {
    requireGuestBytes(data, length);
    for (size_t i = 0; i < length; ++i) consoleSum += data[i];
  }
  size_t consoleRead(uint8_t* data, size_t length) override {
    requireGuestBytes(data, length);
    size_t count = std::min(length, pendingInput.size());
    for (size_t i = 0; i < count; ++i) {
      data[i] = pendingInput.front();
      pendingInput.pop_front();
    }
    return count;
  }
  uint8_t* guestRam(uint64_t gpa, uint64_t length) override { return ram_.translate(gpa, length); }

  // cpu::HartHost
  uint64_t timeNow() override { return ++ticks_; }
  bool supervisorEcall(cpu::Hart&) override { return false; }

  std::deque<uint8_t> pendingInput;
  unsigned resets = 0;
  uint64_t consoleSum = 0;

 private:
  // A single byte may live on SBI's stack (putchar); anything longer must be guest RAM.
  void requireGuestBytes(const uint8_t* data, size_t length) {
    if (length <= 1) return;
    const uint8_t* begin = ram_.hostBase();
    require(data >= begin && data <= begin + ram_.size() && length <= static_cast<size_t>(begin + ram_.size() - data));
  }

  machine::GuestRam& ram_;
  std::vector<std::unique_ptr<cpu::Hart>> allHarts_;
  std::vector<cpu::Hart*> harts_;
  std::vector<machine::HartRunState> states_;
  uint64_t ticks_ = 0;
};

// The SBI spec's reading of a hart mask: hart ids base + bit for each set bit,
// all harts when base is -1; any id that names no hart makes the call invalid.
bool hartMaskValid(uint64_t mask, uint64_t base, unsigned hartCount) {
  if (base == ~uint64_t{0}) return true;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if (!(mask >> bit & 1)) continue;
    if (base > ~uint64_t{0} - bit || base + bit >= hartCount) return false;
  }
  return true;
}

constexpr uint64_t kIpiExtension = 0x735049, kRfenceExtension = 0x52464E43;
constexpr uint64_t kInvalidParam = static_cast<uint64_t>(machine::SbiError::InvalidParam);

}  // namespace

int sbiOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  static std::unique_ptr<machine::GuestRam> ram = std::move(*machine::GuestRam::create(machine::virt::kRamBase, kRamBytes));
  static FakePlatform platform(*ram);
  std::memset(ram->hostBase(), 0, kRamBytes);
  FuzzInput input(data, size);
  platform.reset(1 + input.u8() % kMaxHarts);
  machine::Sbi sbi(platform);
  while (!input.empty()) {
    cpu::Hart& caller = platform.hart(input.u8() % platform.hartCount());
    uint8_t pick = input.u8();
    uint64_t extension = pick < kExtensionCount ? kExtensions[pick] : pick == 0xff ? input.u64() : kExtensions[pick % kExtensionCount];
    caller.setPrivilege(cpu::Privilege::Supervisor);
    caller.setXreg(17, extension);
    uint64_t function = input.u8();
    caller.setXreg(16, function);
    for (unsigned i = 0; i < 6; ++i) caller.setXreg(10 + i, input.u64());
    // Calls that take a hart mask must accept exactly the masks the spec does.
    bool takesMask = (extension == kIpiExtension && function == 0) || (extension == kRfenceExtension && function <= 2);
    bool maskValid = hartMaskValid(caller.xreg(10), caller.xreg(11), platform.hartCount());
    sbi.handleEcall(caller);
    if (takesMask) require((caller.xreg(10) == kInvalidParam) == !maskValid);
  }
  return 0;
}

}  // namespace strata::fuzz
