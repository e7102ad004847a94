// Saving and loading a hart's architectural state (HartCore::saveState/loadState).
#include "cpu/hart_core.h"

namespace strata::cpu {
namespace {

constexpr uint32_t kHartStateVersion = 1;

std::string sectionName(unsigned hartId) { return "hart" + std::to_string(hartId); }

// One list of the plain 64-bit CSRs, so save and load cannot drift apart.
template <typename Core, typename Visit>
void visitPlainRegisters(Core& core, Visit&& visit) {
  for (auto& r : core.x) visit(r);
  for (auto& r : core.f) visit(r);
  for (auto* r : {&core.pc, &core.instret, &core.cycleCounter.offset, &core.cycleCounter.held,
                  &core.instretCounter.offset, &core.instretCounter.held, &core.mstatus, &core.medeleg, &core.mideleg,
                  &core.mie, &core.mtvec, &core.mscratch, &core.mepc, &core.mcause, &core.mtval, &core.mcounteren,
                  &core.menvcfg, &core.mcountinhibit, &core.stvec, &core.sscratch, &core.sepc, &core.scause,
                  &core.stval, &core.scounteren, &core.senvcfg, &core.satp, &core.stimecmp})
    visit(*r);
  for (auto& r : core.pmpaddr) visit(r);
}

}  // namespace

void HartCore::saveState(StateWriter& out) const {
  out.beginSection(sectionName(hartId), kHartStateVersion);
  visitPlainRegisters(*this, [&](const uint64_t& r) { out.put(r); });
  out.put(fflags);
  out.put(frm);
  out.put(static_cast<uint8_t>(priv));
  out.putBytes(pmpcfg);
  out.put(mip.load());
  out.put(mtimecmp.load());
  out.endSection();
}

Result<void> HartCore::loadState(StateReader& in) {
  auto version = in.enterSection(sectionName(hartId), kHartStateVersion);
  if (!version) return version.error();
  visitPlainRegisters(*this, [&](uint64_t& r) { r = in.get<uint64_t>(); });
  x[0] = 0;
  fflags = in.get<uint32_t>() & 0x1f;
  frm = in.get<uint32_t>() & 0x7;
  auto savedPriv = static_cast<Privilege>(in.get<uint8_t>());
  if (savedPriv != Privilege::User && savedPriv != Privilege::Supervisor && savedPriv != Privilege::Machine)
    in.fail("invalid privilege mode");
  in.getBytesInto(pmpcfg);
  mip.store(in.get<uint64_t>());
  mtimecmp.store(in.get<uint64_t>());
  if (auto left = in.leaveSection(); !left) return left;

  reservationValid = false;
  setPrivilege(savedPriv);
  pmpChanged();  // recounts active entries, drops translations and blocks
  flushTlb();
  blocks.flush();
  updateTranslationContext();
  attention.fetch_or(kAttnInterrupts | kAttnTimers);
  return {};
}

}  // namespace strata::cpu
