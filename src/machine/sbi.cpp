#include "machine/sbi.h"

namespace strata::machine {
namespace {

enum Extension : uint64_t {
  kLegacySetTimer = 0x00,
  kLegacyConsolePutchar = 0x01,
  kLegacyConsoleGetchar = 0x02,
  kLegacyClearIpi = 0x03,
  kLegacySendIpi = 0x04,
  kLegacyRemoteFenceI = 0x05,
  kLegacyRemoteSfenceVma = 0x06,
  kLegacyRemoteSfenceVmaAsid = 0x07,
  kLegacyShutdown = 0x08,
  kBase = 0x10,
  kTime = 0x54494D45,
  kIpi = 0x735049,
  kRfence = 0x52464E43,
  kHsm = 0x48534D,
  kSrst = 0x53525354,
  kDbcn = 0x4442434E,
};

constexpr uint64_t kSpecVersion2_0 = 2ull << 24;
constexpr uint64_t kImplementationId = 0x5354;  // "ST": strata
constexpr uint64_t kImplementationVersion = 1;
constexpr uint16_t kCsrStimecmp = 0x14D;
constexpr unsigned kA0 = 10, kA1 = 11, kA6 = 16, kA7 = 17;

bool isSupported(uint64_t extension) {
  switch (extension) {
    case kBase: case kTime: case kIpi: case kRfence: case kHsm: case kSrst: case kDbcn:
    case kLegacySetTimer: case kLegacyConsolePutchar: case kLegacyConsoleGetchar: case kLegacyClearIpi:
    case kLegacySendIpi: case kLegacyRemoteFenceI: case kLegacyRemoteSfenceVma: case kLegacyRemoteSfenceVmaAsid:
    case kLegacyShutdown:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Sbi::handleEcall(cpu::Hart& hart) {
  uint64_t args[6];
  for (unsigned i = 0; i < 6; ++i) args[i] = hart.xreg(kA0 + i);
  uint64_t extension = hart.xreg(kA7);
  if (extension <= kLegacyShutdown && legacy(hart, extension, args)) return;
  Reply reply = dispatch(hart, extension, hart.xreg(kA6), args);
  hart.setXreg(kA0, static_cast<uint64_t>(reply.error));
  hart.setXreg(kA1, static_cast<uint64_t>(reply.value));
}

Sbi::Reply Sbi::dispatch(cpu::Hart& hart, uint64_t extension, uint64_t function, const uint64_t (&args)[6]) {
  switch (extension) {
    case kBase: return base(function, args);
    case kTime: return function == 0 ? timer(hart, args[0]) : Reply{SbiError::NotSupported};
    case kIpi: return function == 0 ? ipi(args[0], args[1]) : Reply{SbiError::NotSupported};
    case kRfence: return remoteFence(hart, function, args[0], args[1]);
    case kHsm: return hartManagement(hart, function, args);
    case kSrst: return function == 0 ? systemReset(args[0], args[1]) : Reply{SbiError::NotSupported};
    case kDbcn: return debugConsole(function, args);
    default: return Reply{SbiError::NotSupported};
  }
}

Sbi::Reply Sbi::base(uint64_t function, const uint64_t (&args)[6]) {
  switch (function) {
    case 0: return {SbiError::Success, static_cast<int64_t>(kSpecVersion2_0)};
    case 1: return {SbiError::Success, static_cast<int64_t>(kImplementationId)};
    case 2: return {SbiError::Success, static_cast<int64_t>(kImplementationVersion)};
    case 3: return {SbiError::Success, isSupported(args[0]) ? 1 : 0};
    case 4: case 5: case 6: return {SbiError::Success, 0};  // mvendorid, marchid, mimpid
    default: return {SbiError::NotSupported};
  }
}

Sbi::Reply Sbi::timer(cpu::Hart& hart, uint64_t deadline) {
  // The hart implements Sstc, so the SBI timer is its stimecmp: STIP follows it.
  hart.writeCsr(kCsrStimecmp, deadline);
  return {};
}

template <typename Visit>
bool Sbi::forEachHart(uint64_t hartMask, uint64_t hartMaskBase, Visit visit) {
  const uint64_t count = platform_.hartCount();
  if (hartMaskBase == ~uint64_t{0}) {  // "all harts" (SBI 2.0, 3.1); the mask is ignored
    for (unsigned id = 0; id < count; ++id) visit(id);
    return true;
  }
  // Every selected hart id is base + bit; compare without forming the sum, which
  // wraps for a base near 2^64 and would turn into a small, valid-looking id.
  if (hartMaskBase >= count) return false;
  const uint64_t bitsInRange = count - hartMaskBase;  // 1..count
  if (bitsInRange < 64 && (hartMask >> bitsInRange) != 0) return false;
  for (unsigned bit = 0; bit < 64 && bit < bitsInRange; ++bit)
    if (hartMask >> bit & 1) visit(static_cast<unsigned>(hartMaskBase + bit));
  return true;
}

Sbi::Reply Sbi::ipi(uint64_t hartMask, uint64_t hartMaskBase) {
  bool valid = forEachHart(hartMask, hartMaskBase, [&](unsigned id) {
    cpu::Hart& target = platform_.hart(id);
    target.postSupervisorSoftwareInterrupt();
    target.kick();
  });
  return {valid ? SbiError::Success : SbiError::InvalidParam};
}

Sbi::Reply Sbi::remoteFence(cpu::Hart& caller, uint64_t function, uint64_t hartMask, uint64_t hartMaskBase) {
  cpu::RemoteFence fence;
  if (function == 0) {
    fence = cpu::RemoteFence::InstructionCache;
  } else if (function == 1 || function == 2) {
    fence = cpu::RemoteFence::Tlb;  // a full flush covers any address range and ASID
  } else {
    return {SbiError::NotSupported};  // hypervisor-extension fences: no H extension
  }
  bool valid = forEachHart(hartMask, hartMaskBase, [&](unsigned id) {
    cpu::Hart& target = platform_.hart(id);
    target.requestRemoteFence(fence);
    if (&target != &caller) target.kick();
  });
  if (!valid) return {SbiError::InvalidParam};
  // The caller applies its own fence at the end of this instruction; wait for the others.
  forEachHart(hartMask, hartMaskBase, [&](unsigned id) {
    cpu::Hart& target = platform_.hart(id);
    if (&target != &caller) target.waitForRemoteFences();
  });
  return {};
}

Sbi::Reply Sbi::hartManagement(cpu::Hart& hart, uint64_t function, const uint64_t (&args)[6]) {
  switch (function) {
    case 0:  // hart_start(hartid, start_addr, opaque)
      if (args[0] >= platform_.hartCount()) return {SbiError::InvalidParam};
      return {platform_.startHart(static_cast<unsigned>(args[0]), args[1], args[2])};
    case 1:  // hart_stop()
      hart.stopSelf();
      return {};
    case 2:  // hart_get_status(hartid)
      if (args[0] >= platform_.hartCount()) return {SbiError::InvalidParam};
      return {SbiError::Success, static_cast<int64_t>(platform_.hartState(static_cast<unsigned>(args[0])))};
    default:  // hart_suspend: no idle states are advertised
      return {SbiError::NotSupported};
  }
}

Sbi::Reply Sbi::systemReset(uint64_t type, uint64_t reason) {
  if (type > 2 && type < 0xF0000000) return {SbiError::InvalidParam};
  if (reason > 1 && reason < 0xE0000000) return {SbiError::InvalidParam};
  if (type > 2) return {SbiError::NotSupported};
  platform_.resetSystem(type == 0 ? SystemResetKind::Shutdown : SystemResetKind::Reboot, static_cast<uint32_t>(reason));
  return {};
}

Sbi::Reply Sbi::debugConsole(uint64_t function, const uint64_t (&args)[6]) {
  switch (function) {
    case 0:    // write(num_bytes, base_lo, base_hi)
    case 1: {  // read(num_bytes, base_lo, base_hi)
      uint8_t* buffer = platform_.guestRam(args[1], args[0]);
      if (args[2] != 0 || (args[0] != 0 && !buffer)) return {SbiError::InvalidParam};
      if (function == 0) {
        platform_.consoleWrite(buffer, args[0]);
        return {SbiError::Success, static_cast<int64_t>(args[0])};
      }
      return {SbiError::Success, static_cast<int64_t>(platform_.consoleRead(buffer, args[0]))};
    }
    case 2: {  // write_byte(byte)
      uint8_t byte = static_cast<uint8_t>(args[0]);
      platform_.consoleWrite(&byte, 1);
      return {};
    }
    default:
      return {SbiError::NotSupported};
  }
}

bool Sbi::legacy(cpu::Hart& hart, uint64_t extension, const uint64_t (&args)[6]) {
  int64_t result = 0;
  switch (extension) {
    case kLegacySetTimer:
      timer(hart, args[0]);
      break;
    case kLegacyConsolePutchar: {
      uint8_t byte = static_cast<uint8_t>(args[0]);
      platform_.consoleWrite(&byte, 1);
      break;
    }
    case kLegacyConsoleGetchar: {
      uint8_t byte;
      result = platform_.consoleRead(&byte, 1) == 1 ? byte : -1;
      break;
    }
    case kLegacyClearIpi:
      hart.writeCsr(0x144, hart.readCsr(0x144).value_or(0) & ~(uint64_t{1} << cpu::kSupervisorSoftware));
      break;
    case kLegacySendIpi:
    case kLegacyRemoteFenceI:
    case kLegacyRemoteSfenceVma:
    case kLegacyRemoteSfenceVmaAsid: {
      // The hart mask is passed by address in guest memory.
      uint8_t* maskBytes = platform_.guestRam(args[0], sizeof(uint64_t));
      uint64_t mask = ~uint64_t{0};
      if (maskBytes) __builtin_memcpy(&mask, maskBytes, sizeof mask);
      uint64_t base = maskBytes ? 0 : ~uint64_t{0};
      Reply reply = extension == kLegacySendIpi ? ipi(mask, base)
                    : remoteFence(hart, extension == kLegacyRemoteFenceI ? 0 : 1, mask, base);
      result = static_cast<int64_t>(reply.error);
      break;
    }
    case kLegacyShutdown:
      platform_.resetSystem(SystemResetKind::Shutdown, 0);
      break;
    default:
      return false;
  }
  hart.setXreg(kA0, static_cast<uint64_t>(result));
  return true;
}

}  // namespace strata::machine
