// PageSharingReport: what `strata run --mem-merge` can say about KSM, which merges
// pages only while /sys/kernel/mm/ksm/run is 1. This VM's merged pages come from
// /proc/self/ksm_merging_pages (Linux 6.1+), opened before the sandbox, read as a
// boot ends and by GET /vm and /vm/stats.
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
