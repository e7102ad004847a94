// System instructions (ecall, ebreak, xRET, wfi, fences) and the A extension
// (LR/SC and AMOs on host atomics, so harts on different threads agree).
#include <type_traits>

#include "cpu/hart_core.h"

namespace strata::cpu {

bool HartCore::executeSystem(const DecodedInsn& insn) {
  const uint64_t nextPc = pc + instructionLength(insn.raw);
  switch (insn.op) {
    case Op::Ecall: {
      if (priv == Privilege::Supervisor) {
        // The machine may answer as M-mode firmware; it sees pc already past the
        // ecall so it can redirect the hart with setPc() if it wants to.
        const uint64_t ecallPc = pc;
        pc = nextPc;
        if (host.supervisorEcall(owner)) return true;
        pc = ecallPc;
      }
      static constexpr uint64_t kCauses[] = {csr::kEcallFromU, csr::kEcallFromS, 0, csr::kEcallFromM};
      return raise(kCauses[static_cast<unsigned>(priv)], 0);
    }
    case Op::Ebreak: return raise(csr::kBreakpoint, pc);
    case Op::Mret: {
      if (priv != Privilege::Machine) return raiseIllegal(insn);
      const auto previous = static_cast<Privilege>((mstatus >> csr::kStatusMppShift) & 3);
      uint64_t s = mstatus & ~(csr::kStatusMie | csr::kStatusMpp);
      if (mstatus & csr::kStatusMpie) s |= csr::kStatusMie;
      s |= csr::kStatusMpie;
      if (previous != Privilege::Machine) s &= ~csr::kStatusMprv;
      mstatus = s;
      pc = mepc;
      reservationValid = false;
      setPrivilege(previous);
      attention.fetch_or(kAttnInterrupts, std::memory_order_relaxed);
      return true;
    }
    case Op::Sret: {
      if (priv == Privilege::User || (priv == Privilege::Supervisor && (mstatus & csr::kStatusTsr)))
        return raiseIllegal(insn);
      const Privilege previous = (mstatus & csr::kStatusSpp) ? Privilege::Supervisor : Privilege::User;
      uint64_t s = mstatus & ~(csr::kStatusSie | csr::kStatusSpp | csr::kStatusMprv);
      if (mstatus & csr::kStatusSpie) s |= csr::kStatusSie;
      s |= csr::kStatusSpie;
      mstatus = s;
      pc = sepc;
      reservationValid = false;
      setPrivilege(previous);
      attention.fetch_or(kAttnInterrupts, std::memory_order_relaxed);
      return true;
    }
    case Op::Wfi:
      if (priv == Privilege::User || (priv == Privilege::Supervisor && (mstatus & csr::kStatusTw)))
        return raiseIllegal(insn);
      pc = nextPc;
      attention.fetch_or(kAttnWfi, std::memory_order_relaxed);
      return true;
    case Op::SfenceVma:
      if (priv == Privilege::User || (priv == Privilege::Supervisor && (mstatus & csr::kStatusTvm)))
        return raiseIllegal(insn);
      // Flushing everything is a superset of any address/ASID-specific fence.
      flushTlb();
      pc = nextPc;
      return true;
    case Op::FenceI:
      // Applied between blocks: the block running now must stay valid until it ends.
      localFences |= kFenceICache;
      attention.fetch_or(kAttnFence, std::memory_order_relaxed);
      pc = nextPc;
      return true;
    default: return raiseIllegal(insn);
  }
}

namespace {

template <typename T>
T amoCompute(Op op, T old, T operand) {
  using S = std::make_signed_t<T>;
  switch (op) {
    case Op::AmoMinW:
    case Op::AmoMinD: return static_cast<S>(old) < static_cast<S>(operand) ? old : operand;
    case Op::AmoMaxW:
    case Op::AmoMaxD: return static_cast<S>(old) > static_cast<S>(operand) ? old : operand;
    case Op::AmoMinuW:
    case Op::AmoMinuD: return old < operand ? old : operand;
    default: return old > operand ? old : operand;  // maxu
  }
}

template <typename T>
T amoApply(Op op, T* target, T operand) {
  switch (op) {
    case Op::AmoSwapW:
    case Op::AmoSwapD: return __atomic_exchange_n(target, operand, __ATOMIC_SEQ_CST);
    case Op::AmoAddW:
    case Op::AmoAddD: return __atomic_fetch_add(target, operand, __ATOMIC_SEQ_CST);
    case Op::AmoXorW:
    case Op::AmoXorD: return __atomic_fetch_xor(target, operand, __ATOMIC_SEQ_CST);
    case Op::AmoAndW:
    case Op::AmoAndD: return __atomic_fetch_and(target, operand, __ATOMIC_SEQ_CST);
    case Op::AmoOrW:
    case Op::AmoOrD: return __atomic_fetch_or(target, operand, __ATOMIC_SEQ_CST);
    default: {
      T old = __atomic_load_n(target, __ATOMIC_RELAXED);
      while (!__atomic_compare_exchange_n(target, &old, amoCompute(op, old, operand), true, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED)) {
      }
      return old;
    }
  }
}

}  // namespace

bool HartCore::executeAtomic(const DecodedInsn& insn) {
  const bool isDouble = insn.op >= Op::LrD && insn.op <= Op::AmoMaxuD;
  const unsigned size = isDouble ? 8 : 4;
  const uint64_t va = x[insn.rs1];
  const bool isLr = insn.op == Op::LrW || insn.op == Op::LrD;
  uint8_t* host = atomicAddress(va, size, isLr);
  if (host == nullptr) return false;
  const uint64_t pa = static_cast<uint64_t>(host - memory.ramHost) + memory.ramBase;
  if (isLr) {
    uint64_t value = isDouble ? __atomic_load_n(reinterpret_cast<uint64_t*>(host), __ATOMIC_SEQ_CST)
                              : __atomic_load_n(reinterpret_cast<uint32_t*>(host), __ATOMIC_SEQ_CST);
    reservationValid = true;
    reservationPa = pa;
    reservationValue = value;
    x[insn.rd] = isDouble ? value : static_cast<uint64_t>(static_cast<int32_t>(value));
    return true;
  }
  if (insn.op == Op::ScW || insn.op == Op::ScD) {
    bool success = false;
    if (reservationValid && reservationPa == pa) {
      // The reservation holds if memory still has the value LR saw.
      if (isDouble) {
        uint64_t expected = reservationValue;
        success = __atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(host), &expected, x[insn.rs2], false,
                                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
      } else {
        uint32_t expected = static_cast<uint32_t>(reservationValue);
        success = __atomic_compare_exchange_n(reinterpret_cast<uint32_t*>(host), &expected,
                                              static_cast<uint32_t>(x[insn.rs2]), false, __ATOMIC_SEQ_CST,
                                              __ATOMIC_SEQ_CST);
      }
    }
    reservationValid = false;
    x[insn.rd] = success ? 0 : 1;
    return true;
  }
  if (isDouble) {
    x[insn.rd] = amoApply<uint64_t>(insn.op, reinterpret_cast<uint64_t*>(host), x[insn.rs2]);
  } else {
    const uint32_t old = amoApply<uint32_t>(insn.op, reinterpret_cast<uint32_t*>(host), static_cast<uint32_t>(x[insn.rs2]));
    x[insn.rd] = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(old)));
  }
  return true;
}

}  // namespace strata::cpu
