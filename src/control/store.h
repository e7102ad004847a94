// Store: the daemon's state in SQLite (WAL): tenants and their quotas, tokens
// (only their SHA-256 hashes), templates, VM definitions with their run state
// (pid, API socket), operations and usage records. Each mutation is one transaction, so a kill -9 of
// the daemon leaves nothing half made, and quota checks cannot race.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/result.h"
#include "control/vm_spec.h"

struct sqlite3;

namespace strata::control {

// The database itself failed (disk full, corrupt file): not a client's fault.
struct StoreFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// How a request the store refused went wrong; the API maps each to its HTTP status.
struct Outcome {
  enum Status { Ok, NotFound, Conflict, OverQuota } status = Ok;
  std::string message;
  bool ok() const { return status == Ok; }
};

struct Quota {  // nullopt: unlimited
  std::optional<uint64_t> vms, vcpus, memoryMib, diskGib, networks;
};

struct TenantRecord {
  std::string name;
  Quota quota;
  ResourceUse used;
};

// Who a token speaks for: the admin, or one tenant.
struct Principal {
  bool admin = false;
  std::string tenant;
};

enum class VmState { Stopped, Starting, Running, Paused };
const char* vmStateName(VmState state);

// A VM run's cumulative counters (they start at 0 with its process); usage
// records hold what they grew by, so the store keeps where the last record left them.
struct MeteredCounters {
  uint64_t cpuTicks = 0;               // user + system CPU time, clock ticks
  uint64_t rxBytes = 0, txBytes = 0;   // its NICs' traffic (GET /vm/stats)
};

struct VmRecord {
  VmSpec spec;
  VmState state = VmState::Stopped;
  pid_t pid = 0;
  uint64_t pidStartTime = 0;  // /proc/PID/stat field 22, so a reused pid is not mistaken for the VM
  std::string apiSocket;
  std::optional<int> lastExit;  // exit code, or 128+signal, of the last run
  MeteredCounters metered;      // the run's counters as far as usage records hold them
  int64_t meteredAt = 0;        // when the last record of this run ended (its start at first)
};

// A disk image VMs are created from as linked clones. tenant nullopt: the
// admin's, shared with every tenant (who may use it but not delete it).
struct TemplateRecord {
  std::string name;
  std::optional<std::string> tenant;
  std::string path;          // the daemon's own qcow2 copy, DATADIR/templates/NAME.qcow2
  uint64_t virtualSize = 0;  // bytes the guest sees
  uint64_t diskGib = 0;      // what it counts against its tenant's disk quota
  bool ready = false;        // false while it is being imported
};

// A VM's state changed ("defined", a VmState name, or "deleted"); who owns it.
struct VmChange {
  std::string vm, tenant, state;
};

struct UsageRecord {
  std::string vm, tenant;
  int64_t start = 0, end = 0;  // UNIX seconds
  double vcpuSeconds = 0, memoryGibHours = 0;
  double diskGibHours = 0;            // the disks' allocated bytes (as measured at the end) over the interval
  uint64_t rxBytes = 0, txBytes = 0;  // what its NICs received and sent in the interval
  UsageRecord& operator+=(const UsageRecord& later);  // the same VM's: one record spanning both
};

// A pool of PVs (files or block devices an admin named) the daemon carves
// volumes from; its registry file is DATADIR/pools/NAME.pvs.
struct StoragePool {
  std::string name;
  std::vector<std::string> pvs;
  uint64_t thinMib = 0;  // size of its thin pool (the hidden volume "_thin"), 0: none
};

// A tenant's volume in a pool; VMs name it as a disk. Its whole size counts in the disk quota.
struct StorageVolume {
  std::string name, tenant, pool;
  std::string type;    // the volume manager's: linear, striped, mirror, raid5, raid10, thin
  uint64_t sizeMib = 0;
  std::string origin;  // a snapshot: the volume it was taken of
  bool ready = false;  // false while the pool is being changed for it
};
inline uint64_t diskGibOf(const StorageVolume& volume) { return (volume.sizeMib + 1023) / 1024; }

// A tenant's network: an access VLAN on the daemon's host switch.
struct NetworkRecord {
  std::string name, tenant;
  unsigned vlan = 0;
};

// A long request's record (Operations keeps the live progress of running ones).
struct OperationRecord {
  int64_t id = 0;
  std::string kind, target, tenant, state;  // state: running, succeeded or failed
  uint64_t done = 0, total = 0;
  std::string error;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Outcome addTenant(const std::string& name);
  std::vector<TenantRecord> tenants();
  std::optional<TenantRecord> tenant(const std::string& name);
  Outcome setQuota(const std::string& tenant, const Quota& quota);

  // tenant nullopt: an admin token.
  Outcome addToken(const std::string& hash, const std::optional<std::string>& tenant);
  std::optional<Principal> principalForToken(const std::string& hash);

  // Checks the name is free and the tenant's quota, and inserts, in one transaction.
  // A pending definition (its files are still being made) holds its name and
  // quota but is not shown until finishDefinition; dropPendingVm takes it back.
  Outcome defineVm(const VmSpec& spec, bool pending = false);
  void finishDefinition(const std::string& name);
  void dropPendingVm(const std::string& name);
  // Removes the definitions a killed daemon left pending (being made or deleted); their names.
  std::vector<std::string> dropPendingVms();
  std::optional<VmRecord> vm(const std::string& name);
  std::vector<VmRecord> vms(const std::optional<std::string>& tenant = std::nullopt);
  // Stopped -> Starting, or Conflict: two concurrent starts cannot both win.
  Outcome claimStart(const std::string& name);
  void recordRunning(const std::string& name, pid_t pid, uint64_t pidStartTime, const std::string& apiSocket);
  void recordState(const std::string& name, VmState state);
  void recordStopped(const std::string& name, std::optional<int> exitStatus);
  // Only a stopped VM. Pending: the definition stays (unseen, holding its name) until dropPendingVm, while its files go.
  Outcome deleteVm(const std::string& name, bool pending = false);
  // Told of every VM change after its transaction; set once, before serving.
  void setVmObserver(std::function<void(const VmChange&)> observer) { vmObserver_ = std::move(observer); }

  // Checks the name is free and the tenant's disk quota, and inserts the
  // template as not ready, in one transaction.
  Outcome reserveTemplate(const TemplateRecord& record);
  void markTemplateReady(const std::string& name);
  void removeUnreadyTemplate(const std::string& name);  // its import failed
  std::optional<TemplateRecord> templateNamed(const std::string& name);
  // A tenant's own templates and the shared ones (all of them for nullopt).
  std::vector<TemplateRecord> templates(const std::optional<std::string>& tenant);
  // Refused while a VM is a linked clone of it.
  Outcome deleteTemplate(const std::string& name);
  // Removes the templates an interrupted import left unready; their paths.
  std::vector<std::string> dropUnreadyTemplates();

  // --- pools, volumes, networks (store_resources.cpp)
  Outcome addPool(const StoragePool& pool);
  std::vector<StoragePool> pools();
  std::optional<StoragePool> pool(const std::string& name);
  // Checks the name is free (among volumes), the pool exists and the tenant's
  // disk quota, and inserts the volume not ready, in one transaction.
  Outcome reserveVolume(const StorageVolume& volume);
  void markVolumeReady(const std::string& name);
  void dropVolume(const std::string& name);
  // Grows a volume's recorded size within the disk quota (or shrinks it back after a failure).
  Outcome setVolumeSize(const std::string& name, uint64_t sizeMib);
  std::optional<StorageVolume> volume(const std::string& name);
  std::vector<StorageVolume> volumes(const std::optional<std::string>& tenant);
  // A ready volume no VM definition names as a disk: marked not ready (being removed), or why not.
  Outcome beginVolumeRemoval(const std::string& name);
  // Volumes a killed daemon left half made or half removed: dropped from the store, returned.
  std::vector<StorageVolume> dropUnreadyVolumes();
  // Inserts the network within the tenant's network quota; a vlan of 0 becomes the lowest free one from 100.
  Outcome addNetwork(NetworkRecord& network);
  std::optional<NetworkRecord> network(const std::string& name);
  std::vector<NetworkRecord> networks(const std::optional<std::string>& tenant);
  // Refused while a VM definition attaches to it.
  Outcome deleteNetwork(const std::string& name);

  // Operations outlive the daemon; one it did not finish is failed with `reason` when it starts again.
  int64_t addOperation(const std::string& kind, const std::string& target, const std::string& tenant);
  void finishOperation(const OperationRecord& record);
  std::optional<OperationRecord> operation(int64_t id);
  void failRunningOperations(const std::string& reason);
  // Forgets the finished operations created before `createdBefore` (UNIX seconds); running ones,
  // and the newest (which keeps ids from being reused), stay. How many went.
  int64_t pruneOperations(int64_t createdBefore);

  // Adds a record and moves the VM's metering mark to (counters, record.end), in
  // one transaction: a restarted daemon continues where the last record ended.
  void addUsage(const UsageRecord& record, const MeteredCounters& counters);
  // Records whose interval overlaps [from, to), optionally one tenant's.
  std::vector<UsageRecord> usage(int64_t from, int64_t to, const std::optional<std::string>& tenant);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  void exec(const char* sql);
  void addColumnIfMissing(const char* table, const char* column, const char* definition);
  void migrateUsage();      // the usage columns data dirs from before disk and network metering lack
  void migrateResources();  // store_resources.cpp: tables and columns data dirs from before them lack
  ResourceUse usedBy(const std::string& tenant);
  Outcome checkQuota(const std::string& tenant, const ResourceUse& asked);
  void notify(const std::string& vm, const std::string& state);

  sqlite3* db_;
  std::mutex mutex_;  // one transaction at a time on this connection
  std::function<void(const VmChange&)> vmObserver_;
};

}  // namespace strata::control
