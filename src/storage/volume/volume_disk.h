// Opening volumes by name: the pool registry (which PV paths make up pool
// NAME) and the "pool:NAME/VOLUME" disk specs that `strata run --disk` and the
// NBD server accept. The registry is a text file per pool,
// ${STRATA_POOL_DIR:-/var/lib/strata/pools}/NAME.pvs, one PV path per line
// ('#' starts a comment), written by `strata pool create|add|replace`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"
#include "storage/disk_image.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume {

std::string poolRegistryDir();
std::string poolRegistryPath(const std::string& poolName);
// The PV paths recorded for a pool; an error naming the file if there is none.
Result<std::vector<std::string>> readPoolRegistry(const std::string& poolName);
// Atomically replaces the pool's registry file (creating the directory).
Result<void> writePoolRegistry(const std::string& poolName, const std::vector<std::string>& pvPaths);
// Pool names that have a registry file.
std::vector<std::string> listRegisteredPools();

// Opens pool NAME from its registry, or from pvPaths when given.
Result<std::shared_ptr<Pool>> openPoolByName(const std::string& poolName, const std::vector<std::string>& pvPaths,
                                             const PoolOpenOptions& options, EventLoop& loop);

// True for "pool:NAME/VOLUME".
bool isVolumeDiskSpec(const std::string& spec);
struct VolumeDiskSpec {
  std::string pool;
  std::string volume;
};
Result<VolumeDiskSpec> parseVolumeDiskSpec(const std::string& spec);

// The pool a "pool:NAME/VOLUME" disk lives in, opened as openVolumeDisk opens
// it; for callers that also manage the volume (a VM's snapshots).
Result<std::shared_ptr<Pool>> openPoolOfDisk(const VolumeDiskSpec& spec, const DiskOptions& options, EventLoop& loop);

// The disk for "pool:NAME/VOLUME". The device owns its pool (and so the PVs'
// lock); options.readOnly opens the pool read-only, options.direct uses
// O_DIRECT on the PVs. Completions run on `loop`.
Result<std::unique_ptr<BlockDevice>> openVolumeDisk(const std::string& spec, const DiskOptions& options,
                                                    EventLoop& loop);
// The same for callers that already know the PVs (tests, benchmarks, NBD).
Result<std::unique_ptr<BlockDevice>> openVolume(const std::vector<std::string>& pvPaths, const std::string& volume,
                                                const DiskOptions& options, EventLoop& loop);

}  // namespace strata::storage::volume
