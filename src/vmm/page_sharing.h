// PageSharingReport: what `strata run --mem-merge` can say about KSM. The host
// merges pages on its own schedule (and only while /sys/kernel/mm/ksm/run is
// 1); how many of this VM's pages it merged is in /proc/self/ksm_merging_pages
// on Linux 6.1 and later. Opened before the sandbox, read at the end of a boot.
#pragma once

#include <cstdint>
#include <optional>

#include "base/unique_fd.h"

namespace strata::vmm {

class PageSharingReport {
 public:
  // Logs a warning when the host's KSM is off or the per-process count is not exposed.
  PageSharingReport();
  // Pages of this process KSM merges now; none when the host does not say.
  std::optional<uint64_t> mergedPages() const;
  // One line on stderr with the figure (called as a boot ends, while guest RAM is still mapped).
  void log() const;

 private:
  UniqueFd mergingPages_;
};

}  // namespace strata::vmm
