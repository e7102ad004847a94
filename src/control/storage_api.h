// StorageApi: the daemon's pools and volumes. An admin defines a pool on files
// or block devices (the volume manager labels them; DATADIR/pools/NAME.pvs is
// its registry, which the VMs' `strata run --disk pool:POOL/VOLUME` reads);
// tenants create, grow, snapshot and delete volumes in it within their disk
// quota and name them as VM disks. Others' volumes are 404.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/api_route.h"
#include "control/event_bus.h"
#include "control/store.h"

namespace strata::storage::volume {
class Pool;
}

namespace strata::control {

class StorageApi {
 public:
  StorageApi(Store& store, std::shared_ptr<EventBus> events, std::string dataDir);

  // Where the pool registry lives; the daemon points STRATA_POOL_DIR there before it starts VMs.
  static std::string registryDir(const std::string& dataDir) { return dataDir + "/pools"; }
  // Volumes a killed daemon left half made or half removed: dropped from the store and (if they exist) their pools.
  void recoverInterruptedChanges();

  // Gives each {"volume": NAME} disk of a definition its pool path; false after a 404/409 reply.
  bool resolveVolumes(Call& call, VmSpec& spec);

  void definePool(Call& call);
  void listPools(Call& call);
  void getPool(Call& call);
  void createVolume(Call& call);
  void listVolumes(Call& call);
  void getVolume(Call& call);
  void resizeVolume(Call& call);
  void snapshotVolume(Call& call);
  void deleteVolume(Call& call);

 private:
  std::optional<StorageVolume> visibleVolume(Call& call, const std::string& name);
  void publish(const StorageVolume& volume, const std::string& state);
  // Reserves `volume` in the store (quota), runs `make` on its pool, then marks it ready and
  // replies 201, or drops the reservation and replies 409 with what the pool said.
  void makeVolume(Call& call, StorageVolume& volume, const StoragePool& pool,
                  const std::function<Result<void>(storage::volume::Pool&)>& make);

  Store& store_;
  std::shared_ptr<EventBus> events_;
  std::string dataDir_;
  std::mutex poolMutex_;  // one change to the pools at a time (each opens its pool, changes it, closes it)
};

const std::vector<MemberRoute<StorageApi>>& storageRoutes();

}  // namespace strata::control
