#include "vmm/migration_postcopy.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/core.h>

#include "base/crc32.h"
#include "base/log.h"
#include "vmm/sandbox.h"
#include "vmm/vm_control.h"

namespace strata::vmm::migration {
namespace {

// After the switch-over, on channel 0. Source to destination, one message per
// page: u64 page | u32 length (0: a zero page, else 4096) | u32 CRC-32 of the
// page | the bytes. Destination to source: u64 page to fetch now, or kDone once
// every page is here (the source may then end).
constexpr uint64_t kDone = ~uint64_t{0};
constexpr size_t kHeaderBytes = 16;
constexpr int kIoSeconds = 30;            // a peer silent this long (with pages still to move) has failed
constexpr size_t kPushBatchPages = 32;    // background pages between two looks at the requests
constexpr int kPostcopySendBuffer = 512 * 1024;  // fetched pages do not queue behind much of the push
constexpr size_t kInputBytes = 256 * 1024;
constexpr int kShutdownCheckMs = 250;     // post-copy paused: how often the fetcher looks for a shutdown
constexpr int kOrderlyEndMs = 2000;       // then how long the board may take to stop by itself

const uint8_t kZeroPage[kPageBytes] = {};

// The syscall, or /dev/userfaultfd where a policy allows only the device (both need
// kernel faults: devices and io_uring write guest RAM from the kernel too).
Result<UniqueFd> openUserfaultfd() {
  UniqueFd fd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (fd.valid()) return fd;
  const int syscallError = errno;
  UniqueFd device(::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (device.valid()) fd = UniqueFd(::ioctl(device.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK));
  if (fd.valid()) return fd;
  return Error{fmt::format("post-copy needs userfaultfd, which this host refuses ({}; /dev/userfaultfd: {})",
                           std::strerror(syscallError), std::strerror(errno))};
}

}  // namespace

// ---- destination ----

Result<std::unique_ptr<PostcopyDestination>> PostcopyDestination::prepare(machine::GuestRam& ram,
                                                                           std::vector<uint64_t> pages) {
  auto userfault = openUserfaultfd();
  if (!userfault) return userfault.error();
  // Guest RAM is a memfd (shared memory) unless --mem-merge made it anonymous.
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = ram.backing() == machine::RamBacking::SharedMemfd ? UFFD_FEATURE_MISSING_SHMEM : 0;
  if (::ioctl(userfault->get(), UFFDIO_API, &api) != 0)
    return errnoError("post-copy: this host's userfaultfd cannot serve guest RAM (UFFDIO_API, shared memory)");
  // The copies sent before the switch-over are stale: out with them, so a touch waits for the source's.
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  for (size_t first = 0; first < pages.size();) {
    size_t last = first;
    while (last + 1 < pages.size() && pages[last + 1] == pages[last] + 1) ++last;
    if (auto dropped = ram.discard(ram.base() + pages[first] * kPageBytes, (last - first + 1) * kPageBytes); !dropped)
      return dropped.error();
    first = last + 1;
  }
  uffdio_register registration{};
  registration.range = {reinterpret_cast<uint64_t>(ram.hostBase()), ram.size()};
  registration.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (::ioctl(userfault->get(), UFFDIO_REGISTER, &registration) != 0)
    return errnoError("post-copy: registering guest RAM with userfaultfd");
  if ((registration.ioctls & (uint64_t{1} << _UFFDIO_COPY)) == 0)
    return Error{"post-copy: this host's userfaultfd cannot copy pages into guest RAM"};
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop.valid()) return errnoError("eventfd");
  return std::unique_ptr<PostcopyDestination>(
      new PostcopyDestination(ram, std::move(*userfault), std::move(stop), std::move(pages)));
}

PostcopyDestination::PostcopyDestination(machine::GuestRam& ram, UniqueFd userfault, UniqueFd stop,
                                         std::vector<uint64_t> pages)
    : ram_(ram),
      userfault_(std::move(userfault)),
      stop_(std::move(stop)),
      needed_(ram.size() / kPageBytes),
      arrived_(ram.size() / kPageBytes),
      requested_(ram.size() / kPageBytes),
      missing_(pages.size()) {
  for (uint64_t page : pages) needed_[page] = true;
}

PostcopyDestination::~PostcopyDestination() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void PostcopyDestination::start(ChannelReader channel, const VmConfig& config, VmControl& control) {
  channel_.emplace(std::move(channel));
  input_.reserve(kInputBytes);
  thread_ = std::thread([this, &config, &control] { fetch(config, control); });
}

void PostcopyDestination::fetch(const VmConfig& config, VmControl& control) {
  const uint64_t total = missing_;
  auto entered = enterThreadRole(ThreadRole::Migration, config);
  if (auto fetched = entered ? fetchAll() : Result<void>(Error{"sandbox: " + entered.error().message}); !fetched)
    return waitPaused(control, fetched.error().message);
  // Either way the source may end now; what this board still lacks it will never read.
  (void)request(kDone);
  uffdio_range range{reinterpret_cast<uint64_t>(ram_.hostBase()), ram_.size()};
  ::ioctl(userfault_.get(), UFFDIO_UNREGISTER, &range);
  if (missing_ == 0)
    log::info("post-copy migration done: {} pages came after the switch-over, {} of them fetched on a fault", total,
              fetchedOnFault_);
}

Result<void> PostcopyDestination::fetchAll() {
  pollfd waits[3] = {{userfault_.get(), POLLIN, 0}, {channel_->fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  while (missing_ > 0) {
    int ready = ::poll(waits, 3, kIoSeconds * 1000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return errnoError("poll");
    if (ready == 0) return Error{"the source went silent"};
    if (waits[2].revents != 0) return {};  // the VM ended before it needed the rest
    if (waits[0].revents != 0)
      if (auto handled = handleFaults(); !handled) return handled;
    if (waits[1].revents != 0)
      if (auto received = receivePages(); !received) return received;
  }
  return {};
}

void PostcopyDestination::waitPaused(VmControl& control, const std::string& why) {
  // Threads touching a missing page wait in their fault, unanswered (nothing spins); the rest of the VM runs on.
  // A page the source never held still comes as a zero page.
  linked_ = false;
  control.setPostcopyPaused();
  log::warn("post-copy migration paused: {} with {} pages still at the source; the VM waits for them until shut down",
            why, missing_);
  pollfd waits[2] = {{stop_.get(), POLLIN, 0}, {userfault_.get(), POLLIN, 0}};
  while (control.state() != VmState::ShuttingDown) {
    if (::poll(waits, 2, kShutdownCheckMs) <= 0) continue;
    if (waits[0].revents != 0) return;  // the VM ended by itself
    if (auto handled = handleFaults(); !handled) {
      log::warn("post-copy migration paused: {}; no page comes any more", handled.error().message);
      waits[1].fd = -1;
    }
  }
  if (::poll(waits, 1, kOrderlyEndMs) > 0) return;
  // A thread waiting in a fault keeps the board from stopping: the process ends here.
  log::warn("shut down while post-copy migration is paused: {} pages never came from the source; the VM ends",
            missing_);
  ::_exit(0);
}

Result<void> PostcopyDestination::handleFaults() {
  uffd_msg messages[64];
  for (;;) {
    ssize_t got = ::read(userfault_.get(), messages, sizeof messages);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) return {};
    if (got <= 0) return errnoError("reading userfaultfd");
    for (size_t index = 0; index < static_cast<size_t>(got) / sizeof(uffd_msg); ++index) {
      if (messages[index].event != UFFD_EVENT_PAGEFAULT) continue;
      const uint64_t page =
          (messages[index].arg.pagefault.address - reinterpret_cast<uint64_t>(ram_.hostBase())) / kPageBytes;
      if (page >= needed_.size() || arrived_[page]) continue;  // being installed: the copy wakes the thread
      if (!needed_[page]) {
        // Never held data at the source either (or the balloon dropped it here): a zero page.
        if (auto installed = install(page, kZeroPage); !installed) return installed;
        continue;
      }
      if (requested_[page] || !linked_) continue;  // paused: the fault waits for a shutdown
      requested_[page] = true;
      ++fetchedOnFault_;
      if (auto asked = request(page); !asked) return asked;
    }
  }
}

Result<void> PostcopyDestination::receivePages() {
  const size_t had = input_.size();
  input_.resize(kInputBytes);
  ssize_t got = ::recv(channel_->fd(), input_.data() + had, kInputBytes - had, MSG_DONTWAIT);
  input_.resize(had + (got > 0 ? static_cast<size_t>(got) : 0));
  if (got == 0) return Error{"the source closed the connection"};
  if (got < 0) return errno == EAGAIN || errno == EINTR ? Result<void>{} : errnoError("receiving from the source");
  size_t at = 0;
  while (input_.size() - at >= kHeaderBytes) {
    uint64_t page = 0;
    uint32_t length = 0, crc = 0;
    std::memcpy(&page, input_.data() + at, 8);
    std::memcpy(&length, input_.data() + at + 8, 4);
    std::memcpy(&crc, input_.data() + at + 12, 4);
    if (length != 0 && length != kPageBytes) return Error{fmt::format("the source sent a page of {} bytes", length)};
    if (page >= needed_.size() || !needed_[page])
      return Error{fmt::format("the source sent page {}, which was not missing", page)};
    if (input_.size() - at - kHeaderBytes < length) break;
    const uint8_t* data = length == 0 ? kZeroPage : input_.data() + at + kHeaderBytes;
    if (crc32Update(0, data, kPageBytes) != crc) return Error{fmt::format("page {} arrived damaged (CRC mismatch)", page)};
    if (auto installed = install(page, data); !installed) return installed;
    at += kHeaderBytes + length;
  }
  input_.erase(input_.begin(), input_.begin() + static_cast<ptrdiff_t>(at));
  return {};
}

Result<void> PostcopyDestination::install(uint64_t page, const uint8_t* data) {
  uffdio_copy copy{};
  copy.dst = reinterpret_cast<uint64_t>(ram_.hostBase()) + page * kPageBytes;
  copy.src = reinterpret_cast<uint64_t>(data);
  copy.len = kPageBytes;
  if (::ioctl(userfault_.get(), UFFDIO_COPY, &copy) != 0) {
    if (errno != EEXIST) return errnoError(fmt::format("installing page {} (UFFDIO_COPY)", page));
    // Already there: wake whoever faulted on it meanwhile.
    uffdio_range range{copy.dst, kPageBytes};
    ::ioctl(userfault_.get(), UFFDIO_WAKE, &range);
  }
  if (needed_[page] && !arrived_[page]) {
    arrived_[page] = true;
    --missing_;
  }
  return {};
}

Result<void> PostcopyDestination::request(uint64_t page) {
  ssize_t sent;
  do sent = ::send(channel_->fd(), &page, sizeof page, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent != static_cast<ssize_t>(sizeof page)) return errnoError("asking the source for a page");
  return {};
}

// ---- source ----

Result<void> servePostcopyPages(int fd, const uint8_t* ram, uint64_t ramPages, std::span<const uint64_t> pages,
                                const std::function<void(uint64_t sent, uint64_t left)>& progress) {
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kPostcopySendBuffer, sizeof kPostcopySendBuffer);
  std::vector<bool> pushed(ramPages);
  std::vector<uint64_t> fetches;
  std::vector<uint8_t> out;
  uint8_t requests[8 * 64];
  size_t requestBytes = 0;
  size_t next = 0;
  uint64_t sent = 0, left = pages.size();
  auto append = [&](uint64_t page) {
    const uint8_t* data = ram + page * kPageBytes;
    const bool zero = std::memcmp(data, kZeroPage, kPageBytes) == 0;
    const uint32_t length = zero ? 0 : kPageBytes;
    const uint32_t crc = crc32Update(0, data, kPageBytes);
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&page), reinterpret_cast<const uint8_t*>(&page) + 8);
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&length), reinterpret_cast<const uint8_t*>(&length) + 4);
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&crc), reinterpret_cast<const uint8_t*>(&crc) + 4);
    if (!zero) out.insert(out.end(), data, data + kPageBytes);
    if (!pushed[page]) --left;
    pushed[page] = true;
    ++sent;
  };
  for (;;) {
    while (next < pages.size() && pushed[pages[next]]) ++next;
    const bool more = next < pages.size() || !fetches.empty();
    pollfd waiting{fd, POLLIN, 0};
    int ready = ::poll(&waiting, 1, more ? 0 : kIoSeconds * 1000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return errnoError("poll");
    if (ready == 0 && !more) return Error{"the destination went silent before it had every page"};
    if (waiting.revents != 0) {
      ssize_t got = ::recv(fd, requests + requestBytes, sizeof requests - requestBytes, MSG_DONTWAIT);
      if (got == 0) return Error{"the destination closed the connection before it had every page"};
      if (got < 0 && errno != EAGAIN && errno != EINTR) return errnoError("receiving the destination's requests");
      requestBytes += got > 0 ? static_cast<size_t>(got) : 0;
      size_t whole = requestBytes / 8 * 8;
      for (size_t at = 0; at < whole; at += 8) {
        uint64_t page;
        std::memcpy(&page, requests + at, 8);
        if (page == kDone) return {};
        if (page >= ramPages) return Error{fmt::format("the destination asked for page {}, beyond guest RAM", page)};
        fetches.push_back(page);
      }
      std::memmove(requests, requests + whole, requestBytes - whole);
      requestBytes -= whole;
    }
    out.clear();
    for (uint64_t page : fetches) append(page);
    fetches.clear();
    for (size_t batch = 0; batch < kPushBatchPages && next < pages.size(); ++next)
      if (!pushed[pages[next]]) {
        append(pages[next]);
        ++batch;
      }
    if (out.empty()) continue;
    if (auto written = sendAll(fd, out.data(), out.size()); !written) return written;
    progress(sent, left);
  }
}

}  // namespace strata::vmm::migration
