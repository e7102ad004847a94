// Human-readable reports for `strata pool status` and `strata volume list`:
// PV states, free space, per-volume layout, health and (for thin volumes)
// real use. Kept in the library so they are testable and reusable by a
// future daemon.
#pragma once

#include <cstdint>
#include <string>

#include "storage/volume/pool.h"

namespace strata::storage::volume {

// "4.00 MiB", "1.50 GiB", "512 B".
std::string formatBytes(uint64_t bytes);

struct PoolSummary {
  bool degraded = false;  // some redundant volume lost a copy, or a PV is failed
  bool failed = false;    // some volume has data out of reach
};
PoolSummary summarizePool(const Pool& pool);

std::string formatPoolStatus(Pool& pool);
// Hidden volumes (thin pool internals) only with showHidden.
std::string formatVolumeList(Pool& pool, bool showHidden);

}  // namespace strata::storage::volume
