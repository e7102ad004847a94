// CSR numbers and bit layouts of the M/S-mode registers the hart implements
// (privileged spec 1.12 plus Sstc), shared by the CSR file, the trap logic,
// the MMU and tests.
#pragma once

#include <cstdint>

namespace strata::cpu::csr {

// ---- CSR numbers ----
inline constexpr uint16_t kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003;
inline constexpr uint16_t kCycle = 0xc00, kTime = 0xc01, kInstret = 0xc02, kHpmCounter3 = 0xc03,
                          kHpmCounter31 = 0xc1f;
inline constexpr uint16_t kSstatus = 0x100, kSie = 0x104, kStvec = 0x105, kScounteren = 0x106, kSenvcfg = 0x10a,
                          kSscratch = 0x140, kSepc = 0x141, kScause = 0x142, kStval = 0x143, kSip = 0x144,
                          kStimecmp = 0x14d, kSatp = 0x180;
inline constexpr uint16_t kMvendorid = 0xf11, kMarchid = 0xf12, kMimpid = 0xf13, kMhartid = 0xf14,
                          kMconfigptr = 0xf15;
inline constexpr uint16_t kMstatus = 0x300, kMisa = 0x301, kMedeleg = 0x302, kMideleg = 0x303, kMie = 0x304,
                          kMtvec = 0x305, kMcounteren = 0x306, kMenvcfg = 0x30a, kMcountinhibit = 0x320,
                          kMhpmEvent3 = 0x323, kMhpmEvent31 = 0x33f, kMscratch = 0x340, kMepc = 0x341,
                          kMcause = 0x342, kMtval = 0x343, kMip = 0x344, kPmpcfg0 = 0x3a0, kPmpcfg15 = 0x3af,
                          kPmpaddr0 = 0x3b0, kPmpaddr63 = 0x3ef, kMcycle = 0xb00, kMinstret = 0xb02,
                          kMhpmCounter3 = 0xb03, kMhpmCounter31 = 0xb1f;
// Sdtrig (debug spec 1.0, chapter 5): trigger select, data and info.
inline constexpr uint16_t kTselect = 0x7a0, kTdata1 = 0x7a1, kTdata2 = 0x7a2, kTdata3 = 0x7a3, kTinfo = 0x7a4;

// ---- mstatus / sstatus ----
inline constexpr uint64_t kStatusSie = 1ull << 1, kStatusMie = 1ull << 3, kStatusSpie = 1ull << 5,
                          kStatusMpie = 1ull << 7, kStatusSpp = 1ull << 8, kStatusMppShift = 11,
                          kStatusMpp = 3ull << 11, kStatusFsShift = 13, kStatusFs = 3ull << 13,
                          kStatusMprv = 1ull << 17, kStatusSum = 1ull << 18, kStatusMxr = 1ull << 19,
                          kStatusTvm = 1ull << 20, kStatusTw = 1ull << 21, kStatusTsr = 1ull << 22,
                          kStatusUxl = 3ull << 32, kStatusSxl = 3ull << 34, kStatusSd = 1ull << 63;
inline constexpr uint64_t kStatusXlen64 = (2ull << 32) | (2ull << 34);  // UXL = SXL = 64 bits, read-only
inline constexpr uint64_t kFsOff = 0, kFsInitial = 1ull << 13, kFsClean = 2ull << 13, kFsDirty = 3ull << 13;
inline constexpr uint64_t kMstatusWritable = kStatusSie | kStatusMie | kStatusSpie | kStatusMpie | kStatusSpp |
                                             kStatusMpp | kStatusFs | kStatusMprv | kStatusSum | kStatusMxr |
                                             kStatusTvm | kStatusTw | kStatusTsr;
inline constexpr uint64_t kSstatusVisible =
    kStatusSie | kStatusSpie | kStatusSpp | kStatusFs | kStatusSum | kStatusMxr | kStatusUxl | kStatusSd;
inline constexpr uint64_t kSstatusWritable = kStatusSie | kStatusSpie | kStatusSpp | kStatusFs | kStatusSum | kStatusMxr;

// ---- mip / mie ----
inline constexpr uint64_t kSsip = 1ull << 1, kMsip = 1ull << 3, kStip = 1ull << 5, kMtip = 1ull << 7,
                          kSeip = 1ull << 9, kMeip = 1ull << 11;
inline constexpr uint64_t kSupervisorInterrupts = kSsip | kStip | kSeip;
inline constexpr uint64_t kAllInterrupts = kSupervisorInterrupts | kMsip | kMtip | kMeip;

// ---- misa: RV64 IMAFDC + S + U ----
inline constexpr uint64_t kMisaValue = (2ull << 62) | (1u << ('A' - 'A')) | (1u << ('C' - 'A')) | (1u << ('D' - 'A')) |
                                  (1u << ('F' - 'A')) | (1u << ('I' - 'A')) | (1u << ('M' - 'A')) |
                                  (1u << ('S' - 'A')) | (1u << ('U' - 'A'));

// ---- menvcfg ----
inline constexpr uint64_t kEnvcfgFiom = 1ull << 0, kEnvcfgStce = 1ull << 63;

// ---- satp ----
inline constexpr uint64_t kSatpModeBare = 0, kSatpModeSv39 = 8, kSatpModeSv48 = 9, kSatpModeSv57 = 10;
inline constexpr uint64_t kSatpPpnMask = (1ull << 44) - 1;
inline constexpr uint64_t kSatpAsidShift = 44, kSatpAsidMask = 0xffffull << 44;

// ---- exception causes ----
enum Cause : uint64_t {
  kInstructionMisaligned = 0,
  kInstructionAccessFault = 1,
  kIllegalInstruction = 2,
  kBreakpoint = 3,
  kLoadMisaligned = 4,
  kLoadAccessFault = 5,
  kStoreMisaligned = 6,
  kStoreAccessFault = 7,
  kEcallFromU = 8,
  kEcallFromS = 9,
  kEcallFromM = 11,
  kInstructionPageFault = 12,
  kLoadPageFault = 13,
  kStorePageFault = 15,
};
inline constexpr uint64_t kInterruptFlag = 1ull << 63;

}  // namespace strata::cpu::csr
