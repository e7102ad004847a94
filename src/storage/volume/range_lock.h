// RangeLock: first-come-first-served exclusive locks on byte ranges of one
// volume's legs. RAID 5 takes it around every parity update (a batch of writes
// to one row's columns), and rebuild/scrub around each step, so parity is
// never computed from a half-written stripe. Mirror/RAID 10 writes take it
// only while maintenance runs on the volume (otherwise they are just counted,
// so maintenance can wait for them to drain). Shared per volume through the
// Pool, so every opener of a volume and the maintenance code see one lock.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace strata::storage::volume {

class RangeLock {
 public:
  using Ticket = uint64_t;
  // Queues [lo, hi); `granted(ticket)` runs once no earlier entry overlapping
  // it is held or waiting, which may be before acquire returns.
  Ticket acquire(uint64_t lo, uint64_t hi, std::function<void(Ticket)> granted);
  void release(Ticket ticket);
  size_t entries() const { return entries_.size(); }

  // Maintenance (rebuild, scrub, resync) running on the volume.
  void beginMaintenance() { ++maintenance_; }
  void endMaintenance() { --maintenance_; }
  bool maintenanceActive() const { return maintenance_ > 0; }
  // Writes that did not lock because no maintenance was running.
  void unlockedStarted() { ++unlocked_; }
  void unlockedEnded() { --unlocked_; }
  uint32_t unlockedInFlight() const { return unlocked_; }

 private:
  struct Entry {
    Ticket ticket;
    uint64_t lo, hi;
    bool held;
    std::function<void(Ticket)> granted;
  };
  void grantWaiting();

  std::vector<Entry> entries_;  // in arrival order
  Ticket nextTicket_ = 1;
  bool granting_ = false;
  bool regrant_ = false;
  uint32_t maintenance_ = 0;
  uint32_t unlocked_ = 0;
};

}  // namespace strata::storage::volume
