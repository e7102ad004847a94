#include "machine/plic.h"

#include <algorithm>

#include "base/log.h"

namespace strata::machine {

class Plic::SourceLine : public IrqLine {
 public:
  SourceLine(Plic* plic, unsigned source) : plic_(plic), source_(source) {}
  void setLevel(bool asserted) override {
    if (plic_) plic_->setSourceLevel(source_, asserted);
  }

 private:
  Plic* plic_;  // null for the disconnected line
  unsigned source_;
};

Plic::Plic(unsigned hartCount, unsigned sourceCount, HartLineDriver driveHartLine)
    : hartCount_(hartCount),
      sourceCount_(std::clamp(sourceCount, 1u, kMaxSources)),
      words_((sourceCount_ + 31) / 32),
      driveHartLine_(std::move(driveHartLine)),
      disconnected_(std::make_unique<SourceLine>(nullptr, 0)),
      priority_(sourceCount_, 0),
      level_(words_, 0),
      pending_(words_, 0),
      claimed_(words_, 0),
      enable_(static_cast<size_t>(2) * hartCount * words_, 0),
      threshold_(static_cast<size_t>(2) * hartCount, 0),
      output_(static_cast<size_t>(2) * hartCount, 0) {
  if (sourceCount != sourceCount_) {
    log::warn("plic: {} sources requested, using {}", sourceCount, sourceCount_);
  }
  lines_.resize(sourceCount_);
  for (unsigned source = 1; source < sourceCount_; ++source) {
    lines_[source] = std::make_unique<SourceLine>(this, source);
  }
}

Plic::~Plic() = default;

IrqLine& Plic::line(unsigned source) {
  if (source == 0 || source >= sourceCount_) {
    log::error("plic: no interrupt source {} (valid: 1..{}); line left disconnected", source,
               sourceCount_ - 1);
    return *disconnected_;
  }
  return *lines_[source];
}

bool Plic::testBit(const std::vector<uint32_t>& words, unsigned bit) {
  return (words[bit / 32] >> (bit % 32)) & 1;
}

void Plic::assignBit(std::vector<uint32_t>& words, unsigned bit, bool value) {
  const uint32_t mask = uint32_t{1} << (bit % 32);
  if (value) {
    words[bit / 32] |= mask;
  } else {
    words[bit / 32] &= ~mask;
  }
}

void Plic::setSourceLevel(unsigned source, bool level) {
  std::lock_guard lock(mutex_);
  assignBit(level_, source, level);
  // Level-triggered gateway: a claimed source stays quiet until completed;
  // a deasserted line withdraws its request.
  if (!testBit(claimed_, source)) assignBit(pending_, source, level);
  updateOutputsLocked();
}

bool Plic::enabledLocked(unsigned context, unsigned source) const {
  return (enable_[context * words_ + source / 32] >> (source % 32)) & 1;
}

bool Plic::contextWantsInterruptLocked(unsigned context) const {
  for (unsigned word = 0; word < words_; ++word) {
    uint32_t candidates = pending_[word] & ~claimed_[word] & enable_[context * words_ + word];
    while (candidates) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctz(candidates));
      candidates &= candidates - 1;
      if (priority_[word * 32 + bit] > threshold_[context]) return true;
    }
  }
  return false;
}

void Plic::updateOutputsLocked() {
  for (unsigned context = 0; context < contextCount(); ++context) {
    const bool wanted = contextWantsInterruptLocked(context);
    if (wanted == static_cast<bool>(output_[context])) continue;
    output_[context] = wanted;
    const cpu::InterruptBit bit =
        (context % 2 == 0) ? cpu::kMachineExternal : cpu::kSupervisorExternal;
    if (driveHartLine_) driveHartLine_(context / 2, bit, wanted);
  }
}

uint32_t Plic::claimLocked(unsigned context) {
  uint32_t best = 0;
  uint32_t bestPriority = threshold_[context];  // must be strictly above the threshold
  for (unsigned word = 0; word < words_; ++word) {
    uint32_t candidates = pending_[word] & ~claimed_[word] & enable_[context * words_ + word];
    while (candidates) {
      const unsigned source = word * 32 + static_cast<unsigned>(__builtin_ctz(candidates));
      candidates &= candidates - 1;
      // Strictly greater: on a tie the lowest source id (seen first) wins.
      if (priority_[source] > bestPriority) {
        best = source;
        bestPriority = priority_[source];
      }
    }
  }
  if (best != 0) {
    assignBit(pending_, best, false);
    assignBit(claimed_, best, true);
    updateOutputsLocked();
  }
  return best;
}

void Plic::completeLocked(unsigned context, uint32_t source) {
  // As on SiFive hardware (and QEMU), a completion for a source not enabled in
  // this context is ignored; Linux relies on it by enabling around the write.
  if (source == 0 || source >= sourceCount_) return;
  if (!enabledLocked(context, source) || !testBit(claimed_, source)) return;
  assignBit(claimed_, source, false);
  if (testBit(level_, source)) assignBit(pending_, source, true);
  updateOutputsLocked();
}

uint64_t Plic::read(uint64_t offset, unsigned size) {
  if (size != 4 || offset % 4 != 0) return 0;
  std::lock_guard lock(mutex_);
  if (offset < kPendingBase) {
    const uint64_t source = offset / 4;
    return source < sourceCount_ ? priority_[source] : 0;
  }
  if (offset < kEnableBase) {
    const uint64_t word = (offset - kPendingBase) / 4;
    return word < words_ ? pending_[word] : 0;
  }
  if (offset < kContextBase) {
    const uint64_t context = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    if (context >= contextCount() || word >= words_) return 0;
    return enable_[context * words_ + word];
  }
  const uint64_t context = (offset - kContextBase) / kContextStride;
  if (context >= contextCount()) return 0;
  switch ((offset - kContextBase) % kContextStride) {
    case kThresholdOffset:
      return threshold_[context];
    case kClaimOffset:
      return claimLocked(static_cast<unsigned>(context));
    default:
      return 0;
  }
}

void Plic::write(uint64_t offset, unsigned size, uint64_t value) {
  if (size != 4 || offset % 4 != 0) return;
  const uint32_t value32 = static_cast<uint32_t>(value);
  std::lock_guard lock(mutex_);
  if (offset < kPendingBase) {
    const uint64_t source = offset / 4;
    if (source == 0 || source >= sourceCount_) return;
    priority_[source] = value32 & kMaxPriority;
    updateOutputsLocked();
    return;
  }
  if (offset < kEnableBase) return;  // pending bits are read-only
  if (offset < kContextBase) {
    const uint64_t context = (offset - kEnableBase) / kEnableStride;
    const uint64_t word = (offset - kEnableBase) % kEnableStride / 4;
    if (context >= contextCount() || word >= words_) return;
    uint32_t mask = ~uint32_t{0};
    if (word == 0) mask &= ~uint32_t{1};  // source 0 does not exist
    const unsigned validInLastWord = sourceCount_ % 32;
    if (word == words_ - 1 && validInLastWord != 0) mask &= (uint32_t{1} << validInLastWord) - 1;
    enable_[context * words_ + word] = value32 & mask;
    updateOutputsLocked();
    return;
  }
  const uint64_t context = (offset - kContextBase) / kContextStride;
  if (context >= contextCount()) return;
  switch ((offset - kContextBase) % kContextStride) {
    case kThresholdOffset:
      threshold_[context] = value32 & kMaxPriority;
      updateOutputsLocked();
      break;
    case kClaimOffset:
      completeLocked(static_cast<unsigned>(context), value32);
      break;
    default:
      break;
  }
}

namespace {
constexpr uint32_t kPlicStateVersion = 1;
}

void Plic::save(StateWriter& out) const {
  std::lock_guard lock(mutex_);
  out.beginSection("plic", kPlicStateVersion);
  out.put(hartCount_);
  out.put(sourceCount_);
  for (const auto* words : {&priority_, &level_, &pending_, &claimed_, &enable_, &threshold_})
    out.putArray(std::span<const uint32_t>(*words));
  out.endSection();
}

Result<void> Plic::load(StateReader& in) {
  std::lock_guard lock(mutex_);
  auto version = in.enterSection("plic", kPlicStateVersion);
  if (!version) return version.error();
  if (in.get<unsigned>() != hartCount_ || in.get<unsigned>() != sourceCount_)
    in.fail("saved for a different number of harts or interrupt sources");
  for (auto* words : {&priority_, &level_, &pending_, &claimed_, &enable_, &threshold_})
    in.getArrayInto(std::span<uint32_t>(*words));
  for (auto& priority : priority_) priority &= kMaxPriority;
  for (auto& threshold : threshold_) threshold &= kMaxPriority;
  if (auto left = in.leaveSection(); !left) return left;
  // Force every context's output to be driven anew from the loaded state.
  for (unsigned context = 0; context < contextCount(); ++context)
    output_[context] = !contextWantsInterruptLocked(context);
  updateOutputsLocked();
  return {};
}

}  // namespace strata::machine
