#include "vmm/page_sharing.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/core.h>

#include "base/log.h"

namespace strata::vmm {

PageSharingReport::PageSharingReport() : mergingPages_(::open("/proc/self/ksm_merging_pages", O_RDONLY | O_CLOEXEC)) {
  std::ifstream run("/sys/kernel/mm/ksm/run");
  std::string state;
  if (!(run >> state)) log::warn("--mem-merge: this host has no KSM (/sys/kernel/mm/ksm/run): no page will be merged");
  else if (state != "1")
    log::warn("--mem-merge: the host's KSM is off (/sys/kernel/mm/ksm/run = {}): pages are merged only once it is 1",
              state);
  if (!mergingPages_.valid())
    log::warn("--mem-merge: the host kernel does not count merged pages per process (no /proc/self/ksm_merging_pages)");
}

std::optional<uint64_t> PageSharingReport::mergedPages() const {
  if (!mergingPages_.valid()) return std::nullopt;
  char text[32] = {};
  ssize_t got = ::pread(mergingPages_.get(), text, sizeof text - 1, 0);
  if (got <= 0) return std::nullopt;
  return std::strtoull(text, nullptr, 10);
}

void PageSharingReport::log() const {
  // On stderr like --stats' counters: the operator asked for it with the flag.
  if (auto pages = mergedPages())
    fmt::print(stderr, "strata: --mem-merge: KSM merges {} of this VM's pages ({} MiB)\n", *pages, (*pages * 4096) >> 20);
}

}  // namespace strata::vmm
