// Post-copy live migration (`--postcopy`): the VM switches to the destination
// while some of its pages are still at the source. The destination registers
// guest RAM with userfaultfd (MISSING mode), so any thread touching such a page
// (a vCPU in the JIT or interpreter, a device writing DMA, the kernel on
// io_uring's behalf) blocks until the page is fetched; the source pushes the
// rest meanwhile and serves fetches first, and keeps the VM's memory until the
// destination holds every page. From the switch-over on, the VM lives on both
// hosts at once: after a link loss both sides stay up, `postcopy-paused` (the
// destination's vCPUs that touch a missing page wait, the source keeps every
// page), until a shutdown ends them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "machine/guest_ram.h"
#include "vmm/migration_stream.h"
#include "vmm/vm_config.h"

namespace strata::vmm {
class VmControl;
}

namespace strata::vmm::migration {

// The destination's side: one fetcher thread over the source's connection.
class PostcopyDestination {
 public:
  // Before the guest runs: opens a userfaultfd (a clear error on hosts without
  // one), drops the stale copies of `pages` from RAM and registers RAM, so that
  // a touch of any page not present waits for the fetcher.
  static Result<std::unique_ptr<PostcopyDestination>> prepare(machine::GuestRam& ram, std::vector<uint64_t> pages);
  ~PostcopyDestination();  // stops the fetcher; the source may end
  PostcopyDestination(const PostcopyDestination&) = delete;
  PostcopyDestination& operator=(const PostcopyDestination&) = delete;

  // Once the source has the OK: fetches over channel 0 until every page is
  // here. Losing the source before that pauses post-copy (control says so)
  // until a shutdown, which ends the process if a thread waits in a fault.
  void start(ChannelReader channel, const VmConfig& config, VmControl& control);

 private:
  PostcopyDestination(machine::GuestRam& ram, UniqueFd userfault, UniqueFd stop, std::vector<uint64_t> pages);
  void fetch(const VmConfig& config, VmControl& control);
  Result<void> fetchAll();
  void waitPaused(VmControl& control, const std::string& why);
  Result<void> handleFaults();
  Result<void> receivePages();
  Result<void> install(uint64_t page, const uint8_t* data);
  Result<void> request(uint64_t page);

  machine::GuestRam& ram_;
  UniqueFd userfault_;
  UniqueFd stop_;  // an eventfd the destructor writes
  std::vector<bool> needed_;   // per RAM page: still at the source at the switch-over
  std::vector<bool> arrived_;  // per RAM page: installed from the source
  std::vector<bool> requested_;
  uint64_t missing_ = 0;
  bool linked_ = true;  // false once the source is lost: a fault on a missing page then goes unanswered
  uint64_t fetchedOnFault_ = 0;
  std::vector<uint8_t> input_;  // bytes received, not yet a whole page message
  std::optional<ChannelReader> channel_;
  std::thread thread_;
};

// The source's side, VM paused after the switch-over: pushes `pages` on `fd`
// (channel 0), the ones the destination asks for first, until it says it holds
// them all. `progress` gets the pages sent and left now and then.
Result<void> servePostcopyPages(int fd, const uint8_t* ram, uint64_t ramPages, std::span<const uint64_t> pages,
                                const std::function<void(uint64_t sent, uint64_t left)>& progress);

}  // namespace strata::vmm::migration
