#include "control/console_hub.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <fmt/core.h>

#include "base/unique_fd.h"
#include "control/http_client.h"

namespace strata::control {

// One VM's console connection; shared by the hub and every attachment, so a
// viewer may outlive the hub's map entry of a VM that stopped.
class ConsoleChannel {
 public:
  explicit ConsoleChannel(UniqueFd socket) : socket_(std::move(socket)) {}
  ~ConsoleChannel() { stop(); }

  void seed(std::string text) {
    scrollback_ = text.size() > ConsoleHub::kScrollback ? text.substr(text.size() - ConsoleHub::kScrollback) : text;
  }
  void start() { reader_ = std::thread([this] { readLoop(); }); }
  void stop() {
    {
      std::lock_guard lock(writeMutex_);  // the reader closes the socket when the VM's end goes
      if (socket_.valid()) ::shutdown(socket_.get(), SHUT_RDWR);  // wakes the reader
    }
    if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
  }
  bool ended() {
    std::lock_guard lock(mutex_);
    return ended_;
  }

  // Under the lock: the scrollback and the first live bytes reach the viewer in order, with no gap.
  uint64_t add(ConsoleViewer viewer) {
    std::lock_guard lock(mutex_);
    if (!scrollback_.empty()) viewer.onOutput(scrollback_);
    if (ended_) viewer.onEnd();
    viewers_.emplace(++lastId_, std::move(viewer));
    return lastId_;
  }
  void remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    viewers_.erase(id);
  }
  void type(std::string_view input) {
    std::lock_guard lock(writeMutex_);
    if (socket_.valid()) ::send(socket_.get(), input.data(), input.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }

 private:
  void readLoop() {
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::string_view output(buffer, static_cast<size_t>(n));
      std::lock_guard lock(mutex_);
      scrollback_.append(output);
      if (scrollback_.size() > ConsoleHub::kScrollback) scrollback_.erase(0, scrollback_.size() - ConsoleHub::kScrollback);
      for (auto& [id, viewer] : viewers_) viewer.onOutput(output);
    }
    {
      std::lock_guard lock(writeMutex_);  // an ended channel may stay in the hub a while: it holds no descriptor
      socket_.reset();
    }
    std::lock_guard lock(mutex_);
    ended_ = true;
    for (auto& [id, viewer] : viewers_) viewer.onEnd();
  }

  UniqueFd socket_;
  std::mutex writeMutex_;
  std::mutex mutex_;  // scrollback, viewers, ended
  std::string scrollback_;
  std::map<uint64_t, ConsoleViewer> viewers_;
  uint64_t lastId_ = 0;
  bool ended_ = false;
  std::thread reader_;
};

ConsoleAttachment::~ConsoleAttachment() { channel_->remove(id_); }

void ConsoleAttachment::type(std::string_view input) { channel_->type(input); }

namespace {

std::string tailOf(const std::string& path, size_t bytes) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return {};
  auto size = static_cast<size_t>(file.tellg());
  size_t start = size > bytes ? size - bytes : 0;
  file.seekg(static_cast<std::streamoff>(start));
  std::string text(size - start, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  return text;
}

}  // namespace

ConsoleHub::~ConsoleHub() {
  std::lock_guard lock(mutex_);
  for (auto& [name, channel] : channels_) channel->stop();
}

Result<std::unique_ptr<ConsoleAttachment>> ConsoleHub::attach(const std::string& vm, const std::string& socketPath,
                                                              const std::string& logPath, ConsoleViewer viewer) {
  std::lock_guard lock(mutex_);
  // Channels of VMs that stopped since (this one may run again with a new socket; others may be gone for good).
  std::erase_if(channels_, [](const auto& entry) { return entry.second->ended(); });
  auto& channel = channels_[vm];
  if (!channel) {
    auto socket = connectUnixSocket(socketPath);
    if (!socket) {
      channels_.erase(vm);
      return Error{fmt::format("{}: console not reachable: {}", vm, socket.error().message)};
    }
    channel = std::make_shared<ConsoleChannel>(std::move(*socket));
    // What the guest wrote before we connected (a restarted daemon has no scrollback of its own).
    channel->seed(tailOf(logPath, kScrollback));
    channel->start();
  }
  uint64_t id = channel->add(std::move(viewer));
  return std::make_unique<ConsoleAttachment>(channel, id);
}

}  // namespace strata::control
