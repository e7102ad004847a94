#include "vmm/live_disk.h"
#include "vmm/migration_source.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "base/log.h"
#include "vmm/migration_disks.h"
#include "vmm/migration_postcopy.h"
#include "vmm/migration_tls.h"
#include "vmm/sandbox.h"

namespace strata::vmm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kIoSeconds = 15;           // a destination silent this long has failed
constexpr unsigned kMaxIterations = 30;  // then the last round goes whatever its size
constexpr unsigned kPostcopyIterations = 2;  // rounds before a post-copy switch-over
constexpr unsigned kThrottleStartPercent = 20;
constexpr unsigned kThrottleStepPercent = 10;
constexpr unsigned kThrottleMaxPercent = 90;
constexpr auto kThrottlePeriod = std::chrono::milliseconds(100);
constexpr auto kCompletionLinger = std::chrono::seconds(2);

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The pages the first round sends: all of them, less the memfd's holes (pages
// never written read as zero at the destination too, and reading them here
// would allocate them).
std::vector<uint64_t> pagesHoldingData(const machine::GuestRam& ram) {
  std::vector<uint64_t> pages;
  const uint64_t count = ram.size() / migration::kPageBytes;
  if (ram.backing() != machine::RamBacking::SharedMemfd) {
    for (uint64_t page = 0; page < count; ++page) pages.push_back(page);
    return pages;
  }
  off_t at = 0;
  const off_t end = static_cast<off_t>(ram.size());
  while (at < end) {
    off_t data = ::lseek(ram.fd(), at, SEEK_DATA);
    if (data < 0) break;  // ENXIO: only holes from here
    off_t hole = ::lseek(ram.fd(), data, SEEK_HOLE);
    if (hole < 0) hole = end;
    for (uint64_t page = static_cast<uint64_t>(data) / migration::kPageBytes;
         page * migration::kPageBytes < static_cast<uint64_t>(hole); ++page)
      pages.push_back(page);
    at = hole;
  }
  return pages;
}

// A destination that refuses a stream at once (one requiring TLS) says why on
// channel 0 before it hangs up; that beats "connection reset".
Error withDestinationReason(const migration::ChannelWriter& channel, Error error) {
  pollfd waiting{channel.fd(), POLLIN, 0};
  if (::poll(&waiting, 1, 0) != 1) return error;
  auto answer = migration::readAnswer(channel.fd());
  if (answer && answer->rfind("ERR ", 0) == 0) return Error{"the destination refused the VM: " + answer->substr(4)};
  return error;
}

// Until the destination applied everything sent so far, on every channel.
Result<void> syncChannels(std::vector<migration::ChannelWriter>& channels) {
  for (auto& channel : channels)
    if (auto sent = channel.sendSync(); !sent) return withDestinationReason(channels[0], sent.error());
  for (auto& channel : channels)
    if (auto synced = channel.awaitSync(); !synced) return synced;
  return {};
}

uint64_t bytesSent(const std::vector<migration::ChannelWriter>& channels) {
  uint64_t bytes = 0;
  for (const auto& channel : channels) bytes += channel.bytesSent();
  return bytes;
}

}  // namespace

nlohmann::json MigrationProgress::toJson() const {
  nlohmann::json json = {{"state", state},
                         {"to", to},
                         {"iteration", iteration},
                         {"bytes_sent", bytesSent},
                         {"pages_sent", pagesSent},
                         {"dirty_pages_remaining", dirtyPagesRemaining},
                         {"disk_blocks_remaining", diskBlocksRemaining},
                         {"throttle_percent", throttlePercent},
                         {"total_ms", totalMs},
                         {"downtime_ms", downtimeMs},
                         {"postcopy", postcopy},
                         {"postcopy_pages", postcopyPages}};
  if (switchover)
    json["switchover"] = {{"pause_requested_ns", switchover->pauseRequestedNs},
                          {"vcpus_stopped_ms", switchover->vcpusStoppedMs},
                          {"pages_sent_ms", switchover->pagesSentMs},
                          {"state_sent_ms", switchover->stateSentMs},
                          {"confirmed_ms", switchover->confirmedMs}};
  if (!error.empty()) json["error"] = error;
  return json;
}

OutgoingMigration::OutgoingMigration(VmControl& control) : control_(control), thread_([this] { serve(); }) {}

OutgoingMigration::~OutgoingMigration() {
  {
    std::lock_guard lock(mutex_);
    quitting_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Result<void> OutgoingMigration::start(const MigrationRequest& request) {
  std::lock_guard lock(mutex_);
  if (progress_.state == "active") return Error{"a migration is already running"};
  if (progress_.state == "postcopy-paused")
    return Error{"post-copy migration is paused after the switch-over: the VM runs at the destination, which lacks "
                 "pages only this side holds; shut it down"};
  progress_ = MigrationProgress{};
  progress_.state = "active";
  progress_.to = request.to.text();
  progress_.postcopy = request.postcopy;
  switchedOver_ = false;
  pending_ = request;
  wake_.notify_all();
  return {};
}

MigrationProgress OutgoingMigration::progress() {
  std::lock_guard lock(mutex_);
  if (progress_.state == "completed" && !completionSeen_) {
    completionSeen_ = true;
    wake_.notify_all();
  }
  return progress_;
}

void OutgoingMigration::update(const std::function<void(MigrationProgress&)>& change) {
  std::lock_guard lock(mutex_);
  change(progress_);
}

void OutgoingMigration::serve() {
  auto entered = enterThreadRole(ThreadRole::Migration, control_.config());
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return quitting_ || pending_; });
    if (quitting_) return;
    MigrationRequest request = *pending_;
    pending_.reset();
    lock.unlock();
    const auto started = Clock::now();
    Result<void> done = entered ? migrate(request) : Result<void>(Error{"sandbox: " + entered.error().message});
    lock.lock();
    progress_.totalMs = msSince(started);
    if (done) {
      // The VM ends here once a client saw the outcome (or after a while: nobody asks).
      progress_.state = "completed";
      wake_.wait_for(lock, kCompletionLinger, [&] { return completionSeen_ || quitting_; });
      control_.shutdown();
      continue;
    }
    progress_.error = done.error().message;
    if (switchedOver_) {  // the VM stays held paused: the destination runs it, this side keeps its missing pages
      progress_.state = "postcopy-paused";
      control_.setPostcopyPaused();
      log::warn("post-copy migration to {} paused after the switch-over: {}; the VM stays paused here with every page "
                "until shut down",
                request.to.text(), done.error().message);
      continue;
    }
    progress_.state = "failed";
    log::warn("migration to {} failed, the VM runs on here: {}", request.to.text(), done.error().message);
  }
}

Result<void> OutgoingMigration::sendPages(std::vector<migration::ChannelWriter>& channels, const uint8_t* ram,
                                          const std::vector<uint64_t>& pages, unsigned throttlePercent) {
  uint64_t unreported = 0;
  auto report = [&] {
    update([&](MigrationProgress& progress) {
      progress.pagesSent += unreported;
      progress.bytesSent = bytesSent(channels);
    });
    unreported = 0;
  };
  const auto started = Clock::now();
  bool throttled = false;
  auto setThrottled = [&](bool on) {
    if (on == throttled) return;
    throttled = on;
    if (on) control_.pause();
    else control_.resume();
  };
  for (uint64_t page : pages) {
    auto& channel = channels[page % channels.size()];
    if (auto done = channel.sendPage(page, ram + page * migration::kPageBytes); !done) {
      setThrottled(false);
      return done;
    }
    if (++unreported < 256) continue;
    report();
    if (throttlePercent != 0)
      setThrottled((Clock::now() - started) % kThrottlePeriod < kThrottlePeriod * throttlePercent / 100);
  }
  setThrottled(false);
  report();
  return {};
}

Result<void> OutgoingMigration::migrate(const MigrationRequest& request) {
  auto lease = control_.leaseMachine();
  if (!lease) return lease.error();
  ControlledMachine& machine = (*lease)->machine();
  machine::GuestRam& ram = machine.guestRam();

  std::vector<migration::ChannelWriter> channels;
  const uint64_t session = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  for (unsigned index = 0; index < request.channels; ++index) {
    auto socket = migration::connectTcp(request.to, kIoSeconds);
    if (socket && request.tlsAuthority)
      socket = migration::connectTlsChannel(std::move(*socket), request.tlsAuthority, request.to.host, control_.config(),
                                            kIoSeconds);
    if (!socket) return socket.error();
    channels.emplace_back(std::move(*socket), request.compress);
    if (auto hello = channels.back().sendHello({index, request.channels, session, ram.size()}); !hello) return hello;
  }

  // From here every store marks its page: the TLBs dropped, each store's first
  // one to a page goes through the slow path again.
  DirtyBitmap& dirty = ram.dirtyLog();
  dirty.setLogging(true);
  struct LoggingOff {
    DirtyBitmap& dirty;
    ~LoggingOff() { dirty.setLogging(false); }
  } loggingOff{dirty};
  machine.flushHartTlbs();
  // The disks' tracking starts now too; their blocks count as pages in the rounds below.
  std::unique_ptr<migration::DiskMirror> disks;
  if (request.withDisks) {
    auto mirror = migration::DiskMirror::start(machine.disks(), machine.diskLoop());
    if (!mirror) return mirror.error();
    disks = std::move(*mirror);
    if (auto sent = disks->sendManifest(channels[0]); !sent) return withDestinationReason(channels[0], sent.error());
  }

  const bool wasRunning = control_.state() == VmState::Running;
  std::vector<uint64_t> pages = pagesHoldingData(ram);
  unsigned throttlePercent = 0;
  uint64_t pagesSentSoFar = 0;
  const auto copyStarted = Clock::now();
  for (unsigned iteration = 0;; ++iteration) {
    update([&](MigrationProgress& progress) {
      progress.iteration = iteration;
      progress.dirtyPagesRemaining = pages.size();
      progress.diskBlocksRemaining = disks ? disks->pendingBlocks() : 0;
      progress.throttlePercent = throttlePercent;
    });
    const size_t diskBlocksThisRound = disks ? disks->pendingBlocks() : 0;
    if (disks)
      if (auto sent = disks->sendPending(channels[0]); !sent) return withDestinationReason(channels[0], sent.error());
    if (auto sent = sendPages(channels, ram.hostBase(), pages, throttlePercent); !sent)
      return withDestinationReason(channels[0], sent.error());
    if (auto synced = syncChannels(channels); !synced) return synced;
    // The rate over the whole migration (a round ends once the destination applied it; a small one is mostly the round trip).
    pagesSentSoFar += pages.size() + diskBlocksThisRound;
    const double pagesPerSecond = static_cast<double>(std::max<uint64_t>(pagesSentSoFar, 1)) /
                                  (std::max(msSince(copyStarted), 1.0) / 1000);
    const size_t sentThisRound = pages.size() + diskBlocksThisRound;

    pages.clear();
    dirty.takeMarked(pages);
    if (disks) disks->takeDirty();
    const size_t dirtyDiskBlocks = disks ? disks->pendingBlocks() : 0;
    const size_t dirtyBlocks = pages.size() + dirtyDiskBlocks;
    machine.flushHartTlbs();
    if (control_.state() == VmState::ShuttingDown) return Error{"the VM is shutting down"};
    auto fitsThePause = [&](size_t blocks) {
      return static_cast<double>(blocks) / pagesPerSecond * 1000 <= static_cast<double>(request.downtimeLimitMs);
    };
    if (fitsThePause(dirtyBlocks) || iteration + 1 >= kMaxIterations) break;
    // Post-copy fetches RAM only: the disks' last blocks go in the pause, so it waits until they fit in it.
    if (request.postcopy && iteration + 1 >= kPostcopyIterations && fitsThePause(dirtyDiskBlocks)) break;
    // The guest dirtied more than half of what went out: slow it down more.
    if (request.autoConverge && wasRunning && dirtyBlocks * 2 > sentThisRound)
      throttlePercent = throttlePercent == 0 ? kThrottleStartPercent
                                             : std::min(throttlePercent + kThrottleStepPercent, kThrottleMaxPercent);
  }

  // Stop and copy: the pause drains disk requests; nobody else may resume the VM until it is decided.
  const auto pauseRequested = Clock::now();
  MigrationProgress::Switchover switchover;
  switchover.pauseRequestedNs =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(pauseRequested.time_since_epoch()).count());
  if (control_.pause() != VmState::Paused) return Error{"the VM is shutting down"};
  const auto pausedAt = Clock::now();  // the vCPUs parked just now
  switchover.vcpusStoppedMs = msSince(pauseRequested);
  control_.holdPaused(true);
  struct ResumeOnFailure {
    VmControl& control;
    bool wasRunning;
    bool succeeded = false;
    ~ResumeOnFailure() {
      if (succeeded) return;
      control.holdPaused(false);
      if (wasRunning) control.resume();
    }
  } resumeOnFailure{control_, wasRunning};
  dirty.takeMarked(pages);
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  update([&](MigrationProgress& progress) { progress.dirtyPagesRemaining = pages.size(); });
  if (disks) {  // the pause drained the disk requests: these are the last changes, sent before any switch-over
    disks->takeDirty();
    if (auto sent = disks->sendPending(channels[0]); !sent) return sent;
  }
  // Post-copy sends only the list: the destination fetches those pages once it runs.
  if (auto sent = request.postcopy ? channels[0].sendPostcopyPages(pages) : sendPages(channels, ram.hostBase(), pages, 0);
      !sent)
    return sent;
  switchover.pagesSentMs = msSince(pauseRequested);
  // On shared storage the destination reads the disks once the state arrived: every write reaches them first.
  for (LiveDisk* disk : control_.disks())
    if (auto flushed = disk->flushNow(); !flushed) return flushed;
  auto state = machine.saveStateBytes();
  if (!state) return state.error();
  if (auto sent = channels[0].sendState(*state); !sent) return sent;
  for (size_t index = channels.size(); index-- > 0;)  // channel 0 last: its answer follows
    if (auto ended = channels[index].sendEnd(); !ended) return ended;
  switchover.stateSentMs = msSince(pauseRequested);
  update([&](MigrationProgress& progress) {
    progress.bytesSent = bytesSent(channels);
    if (!request.postcopy) progress.dirtyPagesRemaining = 0;
    progress.diskBlocksRemaining = 0;
  });
  auto answer = migration::readAnswer(channels[0].fd());
  if (!answer) return answer.error();
  if (*answer != "OK") return Error{"the destination refused the VM: " + answer->substr(answer->rfind("ERR ", 0) == 0 ? 4 : 0)};
  resumeOnFailure.succeeded = true;
  const double downtimeMs = msSince(pausedAt);
  switchover.confirmedMs = msSince(pauseRequested);
  update([&](MigrationProgress& progress) {
    progress.downtimeMs = downtimeMs;
    progress.switchover = switchover;
  });
  if (request.postcopy) {
    {
      std::lock_guard lock(mutex_);
      switchedOver_ = true;
    }
    const uint64_t bytesBefore = bytesSent(channels);
    uint64_t reported = 0;
    auto served = migration::servePostcopyPages(
        channels[0].fd(), ram.hostBase(), ram.size() / migration::kPageBytes, pages, [&](uint64_t sent, uint64_t left) {
          update([&](MigrationProgress& progress) {
            progress.pagesSent += sent - std::exchange(reported, sent);
            progress.bytesSent = bytesBefore + sent * migration::kPageBytes;  // at most: zero pages go as a header
            progress.dirtyPagesRemaining = left;
            progress.postcopyPages = sent;
          });
        });
    if (!served) return served;
  }
  log::info("migrated to {} ({:.0f} ms downtime); this VM ends", request.to.text(), downtimeMs);
  return {};
}

}  // namespace strata::vmm
