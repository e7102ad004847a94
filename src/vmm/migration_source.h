// OutgoingMigration: live migration's source side (`PUT /vm/migrate`). Pre-copy:
// every page once, then, round by round, the pages the guest dirtied meanwhile
// (the RAM dirty log), until what is left fits the downtime limit; then a pause,
// the rest and the device state, and the VM ends only once the destination
// confirmed it runs. With disks, each disk is mirrored alongside (migration_disks.h).
// Any failure resumes the VM here. One sender thread,
// started with the API (before the sandbox) and waiting for requests.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "storage/nbd/nbd_tls.h"
#include "vmm/migration_stream.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

struct MigrationRequest {
  migration::TcpAddress to;
  unsigned channels = 1;
  bool compress = false;
  uint64_t downtimeLimitMs = 30;  // the pause to aim for (QEMU defaults to 300 ms)
  bool autoConverge = true;        // throttle the vCPUs when the guest dirties faster than the link
  bool postcopy = false;           // switch over after the first rounds; the destination fetches the rest (migration_postcopy.h)
  bool withDisks = false;          // mirror the disks too: the destination has its own disk files
  // TLS: the destination's certificate must chain to this CA (migration_tls.h); null: in the clear.
  std::shared_ptr<const storage::nbd::TlsCredentials> tlsAuthority;
};

struct MigrationProgress {
  std::string state = "none";  // none | active | completed | failed | postcopy-paused
  std::string to;
  std::string error;
  bool postcopy = false;
  uint64_t postcopyPages = 0;  // pages sent after the switch-over (pushed or fetched)
  unsigned iteration = 0;
  uint64_t bytesSent = 0;
  uint64_t pagesSent = 0;
  uint64_t dirtyPagesRemaining = 0;
  uint64_t diskBlocksRemaining = 0;  // --with-disks: 4 KiB blocks still to send
  unsigned throttlePercent = 0;
  double totalMs = 0;     // request to the destination's confirmation
  double downtimeMs = 0;  // pause to the destination's confirmation
  // Where the stop-and-copy's time went, in ms from the pause request (set once confirmed).
  struct Switchover {
    uint64_t pauseRequestedNs = 0;  // CLOCK_MONOTONIC, to line up with the destination's `--stats`
    double vcpusStoppedMs = 0;
    double pagesSentMs = 0;  // the last dirty pages (post-copy: their list)
    double stateSentMs = 0;
    double confirmedMs = 0;
  };
  std::optional<Switchover> switchover;
  nlohmann::json toJson() const;
};

class OutgoingMigration {
 public:
  explicit OutgoingMigration(VmControl& control);
  ~OutgoingMigration();

  // Starts a migration unless one is running.
  Result<void> start(const MigrationRequest& request);
  // A client reading a completed migration lets the VM end at once.
  MigrationProgress progress();

 private:
  void serve();
  Result<void> migrate(const MigrationRequest& request);
  // Sends the pages on their channels. Auto-converge: with throttlePercent, the
  // vCPUs stand still for that share of every period while pages go out.
  Result<void> sendPages(std::vector<migration::ChannelWriter>& channels, const uint8_t* ram,
                         const std::vector<uint64_t>& pages, unsigned throttlePercent);
  void update(const std::function<void(MigrationProgress&)>& change);

  VmControl& control_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<MigrationRequest> pending_;
  bool quitting_ = false;
  bool completionSeen_ = false;
  bool switchedOver_ = false;  // post-copy: the VM runs at the destination, failure can no longer resume it here
  MigrationProgress progress_;
  std::thread thread_;
};

}  // namespace strata::vmm
