// NetworkApi: the daemon's networks. Each is an access VLAN on one host switch
// the daemon runs as `strata switch host-CRC` (CRC: of its data directory, so
// daemons sharing $STRATA_RUN_DIR differ; a child in its own session, like
// the VMs, so it outlives the daemon; started again when it does not answer,
// stopped when the last network goes; DATADIR/run/switch.pid names it);
// a VM's "network=NAME" NIC is a port of that switch in the network's VLAN.
// Tenants see and use only their own networks (others' are 404).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "control/api_route.h"
#include "control/event_bus.h"
#include "control/store.h"

namespace strata::control {

class NetworkApi {
 public:
  NetworkApi(Store& store, std::shared_ptr<EventBus> events, std::string dataDir, std::string strataBinary);

  // Where the host switch's log and pid file live.
  static std::string runDir(const std::string& dataDir) { return dataDir + "/run"; }
  const std::string& hostSwitch() const { return hostSwitch_; }

  // Starts the host switch unless it answers on its control socket.
  Result<void> ensureSwitch();
  // Turns each of a definition's networks into its switch NIC; false after a 404 reply.
  bool resolveNetworks(Call& call, VmSpec& spec);

  void defineNetwork(Call& call);
  void listNetworks(Call& call);
  void getNetwork(Call& call);
  void deleteNetwork(Call& call);

 private:
  std::optional<NetworkRecord> visibleNetwork(Call& call, const std::string& name);
  void stopUnusedSwitch();

  Store& store_;
  std::shared_ptr<EventBus> events_;
  std::string dataDir_, strataBinary_, hostSwitch_;
  std::mutex switchMutex_;  // one start of the switch at a time
};

const std::vector<MemberRoute<NetworkApi>>& networkRoutes();

}  // namespace strata::control
