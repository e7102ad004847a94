// The CSR file: privilege and read-only checks, WARL masking, the S-mode
// views of M-mode registers, counters, Sstc and the CSR instructions.
#include "cpu/hart_core.h"

namespace strata::cpu {

namespace {

constexpr uint64_t kMedelegWritable = 0xb3ff;  // causes 0-9, 12, 13, 15 (not ecall from M)
constexpr uint64_t kInhibitCycle = 1, kInhibitInstret = 4;  // mcountinhibit.CY, .IR
constexpr uint64_t kMcountinhibitWritable = 0xfffffffd;      // bit 1 (time) does not exist

bool isCounter(uint16_t number) { return number >= csr::kCycle && number <= csr::kHpmCounter31; }

}  // namespace

bool HartCore::csrAccessible(uint16_t number, bool write) const {
  const unsigned minimumPrivilege = (number >> 8) & 3;
  if (static_cast<unsigned>(priv) < minimumPrivilege) return false;
  if (write && (number >> 10) == 3) return false;  // read-only address range
  if (isCounter(number)) {
    const unsigned bit = number & 31;
    if (priv != Privilege::Machine && !((mcounteren >> bit) & 1)) return false;
    if (priv == Privilege::User && !((scounteren >> bit) & 1)) return false;
  }
  if (priv == Privilege::Supervisor) {
    if (number == csr::kSatp && (mstatus & csr::kStatusTvm)) return false;
    if (number == csr::kStimecmp && (!(menvcfg & csr::kEnvcfgStce) || !(mcounteren & 2))) return false;
  }
  if (number <= csr::kFcsr && !fpEnabled()) return false;
  return true;
}

bool HartCore::csrRead(uint16_t number, uint64_t& value, bool privileged, uint64_t retiredInBlock) {
  if (privileged && !csrAccessible(number, false)) return false;
  switch (number) {
    case csr::kFflags: value = fflags; return true;
    case csr::kFrm: value = frm; return true;
    case csr::kFcsr: value = (frm << 5) | fflags; return true;
    case csr::kCycle:
    case csr::kMcycle: value = counterValue(cycleCounter, kInhibitCycle, instret + retiredInBlock); return true;
    case csr::kInstret:
    case csr::kMinstret: value = counterValue(instretCounter, kInhibitInstret, instret + retiredInBlock); return true;
    case csr::kTime: value = host.timeNow(); return true;
    case csr::kSstatus: {
      const uint64_t s = mstatus | (((mstatus & csr::kStatusFs) == csr::kFsDirty) ? csr::kStatusSd : 0);
      value = s & csr::kSstatusVisible;
      return true;
    }
    case csr::kSie: value = mie & mideleg; return true;
    case csr::kSip: value = effectiveMip() & mideleg; return true;
    case csr::kStvec: value = stvec; return true;
    case csr::kScounteren: value = scounteren; return true;
    case csr::kSenvcfg: value = senvcfg; return true;
    case csr::kSscratch: value = sscratch; return true;
    case csr::kSepc: value = sepc; return true;
    case csr::kScause: value = scause; return true;
    case csr::kStval: value = stval; return true;
    case csr::kStimecmp: value = stimecmp; return true;
    case csr::kSatp: value = satp; return true;
    case csr::kMvendorid:
    case csr::kMarchid:
    case csr::kMimpid:
    case csr::kMconfigptr: value = 0; return true;
    case csr::kMhartid: value = hartId; return true;
    case csr::kMstatus:
      value = mstatus | (((mstatus & csr::kStatusFs) == csr::kFsDirty) ? csr::kStatusSd : 0);
      return true;
    case csr::kMisa: value = csr::kMisaValue; return true;
    case csr::kMedeleg: value = medeleg; return true;
    case csr::kMideleg: value = mideleg; return true;
    case csr::kMie: value = mie; return true;
    case csr::kMtvec: value = mtvec; return true;
    case csr::kMcounteren: value = mcounteren; return true;
    case csr::kMenvcfg: value = menvcfg; return true;
    case csr::kMcountinhibit: value = mcountinhibit; return true;
    case csr::kMscratch: value = mscratch; return true;
    case csr::kMepc: value = mepc; return true;
    case csr::kMcause: value = mcause; return true;
    case csr::kMtval: value = mtval; return true;
    case csr::kMip: value = effectiveMip(); return true;
    default: break;
  }
  if ((number >= csr::kHpmCounter3 && number <= csr::kHpmCounter31) ||
      (number >= csr::kMhpmCounter3 && number <= csr::kMhpmCounter31) ||
      (number >= csr::kMhpmEvent3 && number <= csr::kMhpmEvent31)) {
    value = 0;  // no hardware performance counters
    return true;
  }
  if (number >= csr::kTselect && number <= csr::kTinfo) return triggerCsrRead(number, value);
  if (number >= csr::kPmpcfg0 && number <= csr::kPmpcfg15) {
    if (number & 1) return false;  // odd pmpcfg registers do not exist on RV64
    value = readPmpcfg((number - csr::kPmpcfg0) * 4);
    return true;
  }
  if (number >= csr::kPmpaddr0 && number <= csr::kPmpaddr63) {
    value = pmpaddr[number - csr::kPmpaddr0];
    return true;
  }
  return false;
}

void HartCore::writeMstatus(uint64_t value) {
  const uint64_t old = mstatus;
  uint64_t next = (old & ~csr::kMstatusWritable) | (value & csr::kMstatusWritable);
  if (((next & csr::kStatusMpp) >> csr::kStatusMppShift) == 2) next = (next & ~csr::kStatusMpp) | (old & csr::kStatusMpp);
  next = (next & ~(csr::kStatusUxl | csr::kStatusSxl | csr::kStatusSd)) | csr::kStatusXlen64;
  mstatus = next;
  if ((old ^ next) & csr::kStatusMxr) flushTlb();
  updateTranslationContext();
}

// Strata counts one cycle per retired instruction, so both counters follow
// instret; an inhibited counter holds its value (and takes writes) until the
// inhibit bit is cleared, then counts on from it.
uint64_t HartCore::counterValue(const Counter& counter, uint64_t inhibitBit, uint64_t retired) const {
  return (mcountinhibit & inhibitBit) ? counter.held : retired + counter.offset;
}

void HartCore::setCounter(Counter& counter, uint64_t inhibitBit, uint64_t value, uint64_t retired) {
  if (mcountinhibit & inhibitBit) counter.held = value;
  else counter.offset = value - retired;
}

void HartCore::writeMcountinhibit(uint64_t value, uint64_t retired) {
  const uint64_t cycle = counterValue(cycleCounter, kInhibitCycle, retired);
  const uint64_t instructions = counterValue(instretCounter, kInhibitInstret, retired);
  mcountinhibit = value & kMcountinhibitWritable;
  setCounter(cycleCounter, kInhibitCycle, cycle, retired);
  setCounter(instretCounter, kInhibitInstret, instructions, retired);
}

bool HartCore::csrWrite(uint16_t number, uint64_t value, bool privileged, uint64_t retiredInBlock) {
  if (privileged && !csrAccessible(number, true)) return false;
  // Any write but fflags/frm/fcsr may unmask a pending interrupt; re-evaluate at the block boundary.
  if (number > csr::kFcsr) attention.fetch_or(kAttnInterrupts, std::memory_order_relaxed);
  auto updateMip = [&](uint64_t writable) {
    uint64_t old = mip.load();
    while (!mip.compare_exchange_weak(old, (old & ~writable) | (value & writable))) {
    }
  };
  switch (number) {
    case csr::kFflags:
      fflags = value & 0x1f;
      setFsDirty();
      return true;
    case csr::kFrm:
      frm = value & 7;
      setFsDirty();
      return true;
    case csr::kFcsr:
      fflags = value & 0x1f;
      frm = (value >> 5) & 7;
      setFsDirty();
      return true;
    case csr::kMcycle: setCounter(cycleCounter, kInhibitCycle, value, instret + retiredInBlock); return true;
    case csr::kMinstret: setCounter(instretCounter, kInhibitInstret, value, instret + retiredInBlock); return true;
    case csr::kSstatus:
      writeMstatus((mstatus & ~csr::kSstatusWritable) | (value & csr::kSstatusWritable));
      return true;
    case csr::kSie: mie = (mie & ~mideleg) | (value & mideleg & csr::kSupervisorInterrupts); return true;
    case csr::kSip: updateMip(csr::kSsip & mideleg); return true;
    case csr::kStvec: stvec = value & ~2ull; return true;  // modes 2 and 3 are reserved
    case csr::kScounteren: scounteren = value & 0xffffffffull; return true;
    case csr::kSenvcfg: senvcfg = value & csr::kEnvcfgFiom; return true;
    case csr::kSscratch: sscratch = value; return true;
    case csr::kSepc: sepc = value & ~1ull; return true;
    case csr::kScause: scause = value; return true;
    case csr::kStval: stval = value; return true;
    case csr::kStimecmp:
      stimecmp = value;
      checkTimers();
      return true;
    case csr::kSatp: {
      const uint64_t mode = value >> 60;
      if (mode != csr::kSatpModeBare && mode != csr::kSatpModeSv39 && mode != csr::kSatpModeSv48 &&
          mode != csr::kSatpModeSv57)
        return true;  // unsupported modes: the write has no effect
      satp = value & ((0xfull << 60) | csr::kSatpAsidMask | csr::kSatpPpnMask);
      flushTlb();
      updateTranslationContext();
      return true;
    }
    case csr::kMstatus: writeMstatus(value); return true;
    case csr::kMisa: return true;  // fixed
    case csr::kMedeleg: medeleg = value & kMedelegWritable; return true;
    case csr::kMideleg: mideleg = value & csr::kSupervisorInterrupts; return true;
    case csr::kMie: mie = value & csr::kAllInterrupts; return true;
    case csr::kMtvec: mtvec = value & ~2ull; return true;
    case csr::kMcounteren: mcounteren = value & 0xffffffffull; return true;
    case csr::kMenvcfg:
      menvcfg = value & (csr::kEnvcfgFiom | csr::kEnvcfgStce);
      checkTimers();
      return true;
    case csr::kMcountinhibit: writeMcountinhibit(value, instret + retiredInBlock); return true;
    case csr::kMscratch: mscratch = value; return true;
    case csr::kMepc: mepc = value & ~1ull; return true;
    case csr::kMcause: mcause = value; return true;
    case csr::kMtval: mtval = value; return true;
    case csr::kMip: {
      uint64_t writable = csr::kSsip | csr::kStip | csr::kSeip;
      if (menvcfg & csr::kEnvcfgStce) writable &= ~csr::kStip;  // Sstc owns STIP
      updateMip(writable);
      return true;
    }
    default: break;
  }
  if ((number >= csr::kMhpmCounter3 && number <= csr::kMhpmCounter31) ||
      (number >= csr::kMhpmEvent3 && number <= csr::kMhpmEvent31))
    return true;
  if (number >= csr::kTselect && number <= csr::kTinfo) return triggerCsrWrite(number, value);
  if (number >= csr::kPmpcfg0 && number <= csr::kPmpcfg15) {
    if (number & 1) return false;
    writePmpcfg((number - csr::kPmpcfg0) * 4, value);
    return true;
  }
  if (number >= csr::kPmpaddr0 && number <= csr::kPmpaddr63) {
    writePmpaddr(number - csr::kPmpaddr0, value);
    return true;
  }
  return false;
}

bool HartCore::executeCsr(const DecodedInsn& insn, uint64_t retiredInBlock) {
  const uint16_t number = static_cast<uint16_t>(insn.imm & 0xfff);
  const bool immediate = insn.op == Op::Csrrwi || insn.op == Op::Csrrsi || insn.op == Op::Csrrci;
  const uint64_t operand = immediate ? insn.rs1 : x[insn.rs1];
  const bool isSwap = insn.op == Op::Csrrw || insn.op == Op::Csrrwi;
  // csrrw with rd = x0 does not read; csrrs/csrrc with rs1 = x0 (or zimm 0) do not write.
  const bool doRead = !isSwap || insn.rd != kDiscardRegister;
  const bool doWrite = isSwap || insn.rs1 != 0;
  if (!csrAccessible(number, doWrite)) return raiseIllegal(insn);
  uint64_t old = 0;
  if (doRead && !csrRead(number, old, false, retiredInBlock)) return raiseIllegal(insn);
  if (doWrite) {
    // For csrrs/csrrc on mip, only the software-writable SEIP bit takes part in
    // the read-modify-write, not the interrupt controller's line ORed into reads;
    // otherwise setting SSIP while the PLIC line is up would latch SEIP forever.
    uint64_t base = old;
    if (number == csr::kMip) base = (old & ~csr::kSeip) | (mip.load() & csr::kSeip);
    uint64_t next = operand;
    if (insn.op == Op::Csrrs || insn.op == Op::Csrrsi) next = base | operand;
    if (insn.op == Op::Csrrc || insn.op == Op::Csrrci) next = base & ~operand;
    if (!csrWrite(number, next, false, retiredInBlock + 1)) return raiseIllegal(insn);
  }
  x[insn.rd] = old;
  return true;
}

}  // namespace strata::cpu
