#include "machine/clint.h"

#include <algorithm>

#include "base/log.h"

namespace strata::machine {

Clint::Clint(std::vector<ClintTarget*> targets, std::function<uint64_t()> timeNow)
    : targets_(std::move(targets)), timeNow_(std::move(timeNow)) {
  if (targets_.size() > kMaxHarts) {
    log::warn("clint: {} harts do not fit the register map; only {} are reachable", targets_.size(),
              kMaxHarts);
    targets_.resize(kMaxHarts);
  }
  msip_.assign(targets_.size(), 0);
}

Clint::Clint(OwnedTargets targets, std::function<uint64_t()> timeNow)
    : Clint(std::move(targets.pointers), std::move(timeNow)) {
  ownedTargets_ = std::move(targets.owned);
}

bool Clint::locate(uint64_t offset, unsigned size, RegisterRef& ref) const {
  if (size != 1 && size != 2 && size != 4 && size != 8) return false;
  if (offset >= kMtime && offset < kMtime + 8) {
    ref = {RegisterRef::Mtime, kMtime, 8, 0};
  } else if (offset >= kMtimecmpBase && offset < kMtimecmpBase + 8 * uint64_t{targets_.size()}) {
    const uint64_t hart = (offset - kMtimecmpBase) / 8;
    ref = {RegisterRef::Mtimecmp, kMtimecmpBase + 8 * hart, 8, static_cast<unsigned>(hart)};
  } else if (offset < kMsipBase + 4 * uint64_t{targets_.size()}) {
    const uint64_t hart = (offset - kMsipBase) / 4;
    ref = {RegisterRef::Msip, kMsipBase + 4 * hart, 4, static_cast<unsigned>(hart)};
  } else {
    return false;
  }
  // The access must stay inside the register (naturally aligned halves etc.).
  return offset + size <= ref.base + ref.width && (offset - ref.base) % size == 0;
}

uint64_t Clint::readRegisterLocked(const RegisterRef& ref) const {
  switch (ref.kind) {
    case RegisterRef::Msip:
      return msip_[ref.hart];
    case RegisterRef::Mtimecmp:
      return targets_[ref.hart]->timerCompare();
    case RegisterRef::Mtime:
      return timeNow_ ? timeNow_() : 0;
  }
  return 0;
}

uint64_t Clint::read(uint64_t offset, unsigned size) {
  RegisterRef ref;
  if (!locate(offset, size, ref)) return 0;
  std::lock_guard lock(mutex_);
  const uint64_t whole = readRegisterLocked(ref);
  const unsigned shift = static_cast<unsigned>(offset - ref.base) * 8;
  const uint64_t mask = size == 8 ? ~uint64_t{0} : (uint64_t{1} << (size * 8)) - 1;
  return (whole >> shift) & mask;
}

void Clint::write(uint64_t offset, unsigned size, uint64_t value) {
  RegisterRef ref;
  if (!locate(offset, size, ref) || ref.kind == RegisterRef::Mtime) return;
  std::lock_guard lock(mutex_);
  const unsigned shift = static_cast<unsigned>(offset - ref.base) * 8;
  const uint64_t mask = (size == 8 ? ~uint64_t{0} : (uint64_t{1} << (size * 8)) - 1) << shift;
  const uint64_t merged = (readRegisterLocked(ref) & ~mask) | ((value << shift) & mask);
  if (ref.kind == RegisterRef::Msip) {
    const bool level = merged & 1;  // the other bits are hardwired to zero
    msip_[ref.hart] = level;
    targets_[ref.hart]->setSoftwareInterrupt(level);
  } else {
    targets_[ref.hart]->setTimerCompare(merged);
  }
}

bool Clint::softwareInterruptPending(unsigned hart) const {
  std::lock_guard lock(mutex_);
  return hart < msip_.size() && msip_[hart];
}

namespace {
constexpr uint32_t kClintStateVersion = 1;
}

// mtimecmp lives in each hart and is saved with it; the platform timer is the VM's clock.
void Clint::save(StateWriter& out) const {
  std::lock_guard lock(mutex_);
  out.beginSection("clint", kClintStateVersion);
  out.putArray(std::span<const uint8_t>(msip_));
  out.endSection();
}

Result<void> Clint::load(StateReader& in) {
  std::lock_guard lock(mutex_);
  auto version = in.enterSection("clint", kClintStateVersion);
  if (!version) return version.error();
  in.getArrayInto(std::span<uint8_t>(msip_));
  if (auto left = in.leaveSection(); !left) return left;
  for (size_t hart = 0; hart < msip_.size(); ++hart) {
    msip_[hart] = msip_[hart] & 1;
    targets_[hart]->setSoftwareInterrupt(msip_[hart]);
  }
  return {};
}

}  // namespace strata::machine
