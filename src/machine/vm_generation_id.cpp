#include "machine/vm_generation_id.h"

#include <span>

#include "base/random.h"

namespace strata::machine {
namespace {
constexpr uint32_t kStateVersion = 1;
}

VmGenerationId::VmGenerationId() { regenerate(); }

void VmGenerationId::regenerate() {
  Id fresh{};
  // getrandom does not fail once the pool is seeded; the fallback only keeps a
  // clone from repeating its parent's id.
  if (fillRandom(fresh.data(), fresh.size()) != fresh.size())
    for (auto& byte : fresh) byte = static_cast<uint8_t>(reinterpret_cast<uintptr_t>(&fresh) >> 4) ^ byte ^ 0x5a;
  std::lock_guard lock(mutex_);
  id_ = fresh;
}

VmGenerationId::Id VmGenerationId::id() const {
  std::lock_guard lock(mutex_);
  return id_;
}

uint64_t VmGenerationId::read(uint64_t offset, unsigned size) {
  std::lock_guard lock(mutex_);
  uint64_t value = 0;
  for (unsigned byte = 0; byte < size && byte < 8; ++byte)
    if (offset + byte < id_.size()) value |= uint64_t{id_[offset + byte]} << (8 * byte);
  return value;
}

void VmGenerationId::write(uint64_t, unsigned, uint64_t) {}

void VmGenerationId::save(StateWriter& out) const {
  out.beginSection("vmgenid", kStateVersion);
  Id current = id();
  out.putArray(std::span<const uint8_t>(current));
  out.endSection();
}

Result<void> VmGenerationId::load(StateReader& in) {
  if (auto entered = in.enterSection("vmgenid", kStateVersion); !entered) return entered.error();
  Id loaded{};
  in.getArrayInto(std::span<uint8_t>(loaded));
  if (auto left = in.leaveSection(); !left) return left;
  std::lock_guard lock(mutex_);
  id_ = loaded;
  return {};
}

}  // namespace strata::machine
