// VirtioBalloon: the virtio memory balloon (type 5, virtio 1.2 section 5.5).
// The host asks the guest for `target` bytes (config num_pages); pages the
// guest puts in the balloon (inflateq) or reports free (reporting_vq) go back to
// the host at once (GuestRam::discard) and read as zero when touched again.
// Also: deflateq, the statistics queue (polled on a timer), DEFLATE_ON_OOM.
// Every page frame number is checked against guest RAM; bad ones are counted.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "base/loop_timer.h"
#include "machine/guest_ram.h"
#include "virtio/virtio_device.h"

namespace strata::virtio {

namespace balloon {
// Feature bits (spec 5.5.3).
inline constexpr unsigned kFeatureStatsVq = 1;
inline constexpr unsigned kFeatureDeflateOnOom = 2;
inline constexpr unsigned kFeaturePageReporting = 5;
// Page frame numbers always count 4 KiB pages (VIRTIO_BALLOON_PFN_SHIFT).
inline constexpr unsigned kPfnShift = 12;
inline constexpr uint64_t kPageBytes = uint64_t{1} << kPfnShift;

// Statistics tags (spec 5.5.6.3); the index into BalloonStatistics::values.
enum StatTag : uint16_t {
  kSwapIn = 0,
  kSwapOut = 1,
  kMajorFaults = 2,
  kMinorFaults = 3,
  kFreeMemory = 4,
  kTotalMemory = 5,
  kAvailableMemory = 6,
  kDiskCaches = 7,
  kHugetlbAllocations = 8,
  kHugetlbFailures = 9,
  kStatTagCount = 10,
};
// snake_case names for JSON and logs, indexed by tag.
std::string_view statName(unsigned tag);
}  // namespace balloon

// What the guest last said about its memory; values it did not send are empty.
struct BalloonStatistics {
  std::array<std::optional<uint64_t>, balloon::kStatTagCount> values{};
  uint64_t updates = 0;  // statistics buffers received so far
};

// What the host sees of the balloon. Figures the guest writes (actualPages) are
// its claim; the others are counted by the host from what it actually freed.
struct BalloonStatus {
  uint64_t targetBytes = 0;
  uint64_t actualBytes = 0;        // config `actual` as written by the driver
  uint64_t inflatedBytes = 0;      // pages the host holds in the balloon now
  uint64_t reportedBytes = 0;      // free page reporting, cumulative
  uint64_t refusedPfns = 0;        // page frame numbers outside guest RAM
  uint64_t duplicatePfns = 0;      // inflated twice / deflated while not inflated
  uint64_t malformedRequests = 0;  // buffers of the wrong shape (ignored)
  uint64_t discardErrors = 0;      // the host refused to drop pages
  BalloonStatistics statistics;
};

class VirtioBalloon final : public VirtioDevice {
 public:
  struct Options {
    uint64_t targetBytes = 0;
    // How often the guest is asked for fresh statistics; 0: only when asked (requestStatistics).
    std::chrono::milliseconds statsInterval{5000};
  };

  VirtioBalloon(machine::GuestRam& ram, Options options);
  ~VirtioBalloon() override;

  uint32_t deviceId() const override;
  uint64_t deviceFeatures() const override;
  // inflateq, deflateq, statsq, reporting_vq; absent features shift the later ones down.
  unsigned queueCount() const override { return 4; }
  void writeConfig(uint64_t offset, const uint8_t* data, unsigned size) override;
  void activate(uint64_t negotiatedFeatures) override;
  void onQueueNotify(unsigned queue) override;
  void reset() override;

  // Any thread. The target is clamped to guest RAM and rounded down to pages;
  // the driver hears of it through a configuration-change interrupt.
  void setTargetBytes(uint64_t bytes);
  BalloonStatus status() const;
  // Loop thread: hands the held statistics buffer back so the guest refills it.
  void requestStatistics();

 private:
  enum class Role { Inflate, Deflate, Stats, Reporting, None };

  Role roleOf(unsigned queue) const { return queue < roles_.size() ? roles_[queue] : Role::None; }
  std::optional<unsigned> queueOf(Role role) const;
  void publishConfig();  // configMutex_ held
  void changePages(unsigned queue, bool inflate);
  void applyPfns(const std::vector<uint32_t>& pfns, bool inflate);
  void takeStatistics(unsigned queue);
  void takeReports(unsigned queue);
  void discardRun(uint64_t firstPfn, uint64_t count);

  machine::GuestRam& ram_;
  const Options options_;
  const uint64_t ramPages_;
  const uint64_t firstRamPfn_;

  // Loop thread only.
  std::vector<Role> roles_;
  std::vector<bool> inBalloon_;  // by page index within RAM
  std::optional<uint16_t> heldStatsHead_;
  std::unique_ptr<LoopTimer> statsTimer_;
  // Lets tasks posted by setTargetBytes notice the device is gone (a reboot).
  std::shared_ptr<VirtioBalloon*> lifeline_;

  mutable std::mutex configMutex_;  // target/actual and the config bytes
  uint64_t targetPages_ = 0;
  uint32_t actualPages_ = 0;

  mutable std::mutex statusMutex_;
  BalloonStatus counters_;  // all but target/actual
};

}  // namespace strata::virtio
