#include "virtio/balloon.h"

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "virtio/iovec_util.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio {
namespace balloon {

std::string_view statName(unsigned tag) {
  static constexpr std::array<std::string_view, kStatTagCount> kNames = {
      "swap_in",           "swap_out",     "major_faults",     "minor_faults",        "free_memory",
      "total_memory",      "available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures"};
  return tag < kNames.size() ? kNames[tag] : "unknown";
}

}  // namespace balloon

namespace {

using namespace balloon;

// Config space (spec 5.5.4): num_pages, actual, free_page_hint_cmd_id, poison_val.
constexpr uint64_t kConfigNumPages = 0;
constexpr uint64_t kConfigActual = 4;
constexpr size_t kConfigBytes = 16;
// Linux sends at most 256 PFNs per buffer; more in one chain is a hostile
// guest making us loop, so the rest is ignored and the buffer counted malformed.
constexpr uint64_t kMaxPfnsPerChain = 4096;
// struct virtio_balloon_stat: le16 tag, le64 val, packed.
constexpr uint64_t kStatEntryBytes = 10;
constexpr uint64_t kMaxStatEntries = 64;

}  // namespace

VirtioBalloon::VirtioBalloon(machine::GuestRam& ram, Options options)
    : ram_(ram),
      options_(options),
      ramPages_(ram.size() >> kPfnShift),
      firstRamPfn_(ram.base() >> kPfnShift),
      inBalloon_(ramPages_, false),
      lifeline_(std::make_shared<VirtioBalloon*>(this)) {
  std::lock_guard lock(configMutex_);
  targetPages_ = std::min(options.targetBytes, ram.size()) >> kPfnShift;
  publishConfig();
}

VirtioBalloon::~VirtioBalloon() { *lifeline_ = nullptr; }

uint32_t VirtioBalloon::deviceId() const { return kDeviceIdBalloon; }

uint64_t VirtioBalloon::deviceFeatures() const {
  return featureBit(kFeatureStatsVq) | featureBit(kFeatureDeflateOnOom) | featureBit(kFeaturePageReporting);
}

void VirtioBalloon::publishConfig() {
  std::vector<uint8_t> bytes(kConfigBytes, 0);
  uint32_t numPages = static_cast<uint32_t>(std::min<uint64_t>(targetPages_, UINT32_MAX));
  std::memcpy(bytes.data() + kConfigNumPages, &numPages, 4);
  std::memcpy(bytes.data() + kConfigActual, &actualPages_, 4);
  setConfigSpace(std::move(bytes));
}

void VirtioBalloon::writeConfig(uint64_t offset, const uint8_t* data, unsigned size) {
  // Only `actual` is the driver's to write; anything else is ignored.
  if (offset < kConfigActual || offset + size > kConfigActual + 4) return;
  std::lock_guard lock(configMutex_);
  auto* actual = reinterpret_cast<uint8_t*>(&actualPages_);
  std::memcpy(actual + (offset - kConfigActual), data, size);
  publishConfig();
}

void VirtioBalloon::activate(uint64_t features) {
  // Queues exist only for negotiated features and are numbered without gaps
  // (what Linux and QEMU do; free_page_vq is never offered).
  roles_ = {Role::Inflate, Role::Deflate};
  if (features & featureBit(kFeatureStatsVq)) roles_.push_back(Role::Stats);
  if (features & featureBit(kFeaturePageReporting)) roles_.push_back(Role::Reporting);
  if (!statsTimer_ && options_.statsInterval.count() > 0) {
    auto timer = LoopTimer::create(host().loop(), [this] { requestStatistics(); });
    if (timer) statsTimer_ = std::move(*timer);
    else log::warn("virtio-balloon: no statistics timer: {}", timer.error().message);
  }
}

void VirtioBalloon::reset() {
  // A new driver starts with an empty balloon: every page is the guest's again.
  roles_.clear();
  std::fill(inBalloon_.begin(), inBalloon_.end(), false);
  heldStatsHead_.reset();
  {
    std::lock_guard lock(statusMutex_);
    counters_.inflatedBytes = 0;
  }
  std::lock_guard lock(configMutex_);
  actualPages_ = 0;
  publishConfig();
}

std::optional<unsigned> VirtioBalloon::queueOf(Role role) const {
  auto it = std::find(roles_.begin(), roles_.end(), role);
  if (it == roles_.end()) return std::nullopt;
  return static_cast<unsigned>(it - roles_.begin());
}

void VirtioBalloon::onQueueNotify(unsigned queue) {
  switch (roleOf(queue)) {
    case Role::Inflate: changePages(queue, true); break;
    case Role::Deflate: changePages(queue, false); break;
    case Role::Stats: takeStatistics(queue); break;
    case Role::Reporting: takeReports(queue); break;
    case Role::None: break;
  }
}

void VirtioBalloon::changePages(unsigned queue, bool inflate) {
  bool completed = false;
  std::vector<uint32_t> pfns;
  while (auto chain = popChain(queue)) {
    uint64_t count = chain->readableBytes / 4;
    bool malformed = chain->readableBytes % 4 != 0 || count == 0 || count > kMaxPfnsPerChain;
    pfns.resize(static_cast<size_t>(std::min(count, kMaxPfnsPerChain)));
    copyFromIovecs(chain->readable, 0, pfns.data(), pfns.size() * 4);
    applyPfns(pfns, inflate);
    if (malformed) {
      std::lock_guard lock(statusMutex_);
      ++counters_.malformedRequests;
    }
    host().queue(queue).pushUsed(chain->head, 0);
    completed = true;
  }
  if (completed) host().notifyUsed(queue);
}

void VirtioBalloon::applyPfns(const std::vector<uint32_t>& pfns, bool inflate) {
  uint64_t refused = 0, duplicates = 0, changed = 0;
  // Pages newly inflated are discarded in runs of consecutive frames: one system call each.
  uint64_t runStart = 0, runLength = 0;
  for (uint32_t pfn : pfns) {
    uint64_t index = uint64_t{pfn} - firstRamPfn_;
    if (pfn < firstRamPfn_ || index >= ramPages_) {
      ++refused;
      continue;
    }
    if (inBalloon_[index] == inflate) {
      ++duplicates;
      continue;
    }
    inBalloon_[index] = inflate;
    ++changed;
    if (!inflate) continue;  // deflated pages simply become the guest's again
    if (runLength > 0 && index == runStart + runLength) {
      ++runLength;
      continue;
    }
    if (runLength > 0) discardRun(runStart, runLength);
    runStart = index;
    runLength = 1;
  }
  if (runLength > 0) discardRun(runStart, runLength);
  if (refused > 0)
    log::warnRateLimited("virtio-balloon: guest {} {} page frame(s) outside its RAM; refused", inflate ? "inflated" : "deflated",
                         refused);
  std::lock_guard lock(statusMutex_);
  counters_.refusedPfns += refused;
  counters_.duplicatePfns += duplicates;
  if (inflate) counters_.inflatedBytes += changed * kPageBytes;
  else counters_.inflatedBytes -= changed * kPageBytes;
}

void VirtioBalloon::discardRun(uint64_t firstIndex, uint64_t count) {
  auto discarded = ram_.discard(ram_.base() + (firstIndex << kPfnShift), count << kPfnShift);
  if (discarded) return;
  log::warnRateLimited("virtio-balloon: {}", discarded.error().message);
  std::lock_guard lock(statusMutex_);
  ++counters_.discardErrors;
}

void VirtioBalloon::takeStatistics(unsigned queue) {
  while (auto chain = popChain(queue)) {
    // The driver keeps one buffer here; a second one is answered and replaces the first.
    if (heldStatsHead_) host().queue(queue).pushUsed(*heldStatsHead_, 0);
    heldStatsHead_ = chain->head;
    uint64_t entries = std::min(chain->readableBytes / kStatEntryBytes, kMaxStatEntries);
    std::vector<uint8_t> raw(static_cast<size_t>(entries * kStatEntryBytes));
    copyFromIovecs(chain->readable, 0, raw.data(), raw.size());
    std::lock_guard lock(statusMutex_);
    if (chain->readableBytes % kStatEntryBytes != 0 || chain->readableBytes > kMaxStatEntries * kStatEntryBytes)
      ++counters_.malformedRequests;
    for (uint64_t i = 0; i < entries; ++i) {
      uint16_t tag;
      uint64_t value;
      std::memcpy(&tag, raw.data() + i * kStatEntryBytes, 2);
      std::memcpy(&value, raw.data() + i * kStatEntryBytes + 2, 8);
      if (tag < kStatTagCount) counters_.statistics.values[tag] = value;  // unknown tags: newer drivers
    }
    ++counters_.statistics.updates;
  }
  if (heldStatsHead_ && statsTimer_) {
    if (auto armed = statsTimer_->arm(options_.statsInterval); !armed)
      log::warnRateLimited("virtio-balloon: {}", armed.error().message);
  }
}

void VirtioBalloon::requestStatistics() {
  auto queue = queueOf(Role::Stats);
  if (!heldStatsHead_ || !queue || !host().queue(*queue).enabled() || host().deviceFailed()) return;
  host().queue(*queue).pushUsed(*heldStatsHead_, 0);
  heldStatsHead_.reset();
  host().notifyUsed(*queue);
}

void VirtioBalloon::takeReports(unsigned queue) {
  bool completed = false;
  while (auto chain = popChain(queue)) {
    uint64_t bytes = 0, errors = 0;
    for (const auto* list : {&chain->readable, &chain->writable}) {
      for (const auto& iov : *list) {
        // The chain walker checked every buffer lies inside guest RAM.
        auto discarded = ram_.discardHost(static_cast<const uint8_t*>(iov.iov_base), iov.iov_len);
        if (discarded) {
          bytes += iov.iov_len;
        } else {
          ++errors;
          log::warnRateLimited("virtio-balloon: {}", discarded.error().message);
        }
      }
    }
    {
      std::lock_guard lock(statusMutex_);
      counters_.reportedBytes += bytes;
      counters_.discardErrors += errors;
    }
    host().queue(queue).pushUsed(chain->head, 0);
    completed = true;
  }
  if (completed) host().notifyUsed(queue);
}

void VirtioBalloon::setTargetBytes(uint64_t bytes) {
  {
    std::lock_guard lock(configMutex_);
    targetPages_ = std::min(bytes, ram_.size()) >> kPfnShift;
    publishConfig();
  }
  if (!attached()) return;  // the driver reads num_pages when it starts
  host().loop().post([life = lifeline_] {
    if (*life && (*life)->attached()) (*life)->host().notifyConfigChange();
  });
}

BalloonStatus VirtioBalloon::status() const {
  BalloonStatus result;
  {
    std::lock_guard lock(statusMutex_);
    result = counters_;
  }
  std::lock_guard lock(configMutex_);
  result.targetBytes = targetPages_ << kPfnShift;
  result.actualBytes = uint64_t{actualPages_} << kPfnShift;
  return result;
}

}  // namespace strata::virtio
