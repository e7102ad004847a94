#include "vmm/host_console.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include <fmt/core.h>

namespace strata::vmm {
namespace {

constexpr uint8_t kEscape = 0x01;  // Ctrl-A, as in QEMU

void writeAll(int fd, const uint8_t* data, size_t length) {
  while (length > 0) {
    ssize_t n = ::write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader went away; the guest keeps running
    data += n;
    length -= static_cast<size_t>(n);
  }
}

}  // namespace

Result<ConsoleConfig> parseConsoleConfig(const std::string& text) {
  if (text == "stdio") return ConsoleConfig{ConsoleConfig::Kind::Stdio, ""};
  if (text == "pty") return ConsoleConfig{ConsoleConfig::Kind::Pty, ""};
  if (text.rfind("file=", 0) == 0 && text.size() > 5) return ConsoleConfig{ConsoleConfig::Kind::File, text.substr(5)};
  return Error{fmt::format("--console {}: expected stdio, pty or file=PATH", text)};
}

Result<std::unique_ptr<HostConsole>> HostConsole::open(const ConsoleConfig& config) {
  std::unique_ptr<HostConsole> console(new HostConsole());
  switch (config.kind) {
    case ConsoleConfig::Kind::Stdio:
      console->inputFd_ = 0;
      console->outputFd_ = 1;
      console->terminal_ = ::isatty(0);
      break;
    case ConsoleConfig::Kind::Pty: {
      UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!master.valid() || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0)
        return errnoError("creating the console pseudo-terminal");
      termios raw;
      ::tcgetattr(master.get(), &raw);
      ::cfmakeraw(&raw);
      ::tcsetattr(master.get(), TCSANOW, &raw);
      std::fprintf(stderr, "strata: console on %s\n", ::ptsname(master.get()));
      console->inputFd_ = console->outputFd_ = master.get();
      console->ownedInput_ = std::move(master);
      break;
    }
    case ConsoleConfig::Kind::File: {
      UniqueFd file(::open(config.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!file.valid()) return errnoError(config.path);
      console->outputFd_ = file.get();
      console->ownedOutput_ = std::move(file);
      break;
    }
  }
  if (!config.socketPath.empty())
    if (auto listening = console->listenOn(config.socketPath); !listening) return listening.error();
  if (console->terminal_) {
    ::tcgetattr(0, &console->savedTermios_);
    termios raw = console->savedTermios_;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
  }
  return console;
}

HostConsole::~HostConsole() {
  if (terminal_) ::tcsetattr(0, TCSANOW, &savedTermios_);
}

// The socket is its owner's alone (mode 0600): whoever connects types into the guest.
Result<void> HostConsole::listenOn(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return Error{fmt::format("--console-socket {}: path too long", path)};
  path.copy(address.sun_path, path.size());
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return errnoError("console socket");
  ::unlink(path.c_str());  // left by a VM that was killed
  mode_t previous = ::umask(0177);
  int bound = ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(previous);
  if (bound != 0 || ::listen(listener.get(), 4) != 0) return errnoError(path);
  listener_ = std::move(listener);
  return {};
}

Result<void> HostConsole::attach(EventLoop& loop, InputHandler onInput, QuitHandler onQuit) {
  onInput_ = std::move(onInput);
  onQuit_ = std::move(onQuit);
  if (listener_.valid()) {
    if (auto watched = loop.watch(listener_.get(), EPOLLIN, [this, &loop](uint32_t) { acceptClient(loop); }); !watched)
      return watched.error();
    std::lock_guard lock(clientMutex_);
    if (client_.valid())
      if (auto watched = loop.watch(client_.get(), EPOLLIN, [this, &loop](uint32_t) { onClientReadable(loop); });
          !watched)
        return watched.error();
  }
  if (inputFd_ < 0) return {};
  int flags = ::fcntl(inputFd_, F_GETFL);
  ::fcntl(inputFd_, F_SETFL, flags | O_NONBLOCK);
  auto watched = loop.watch(inputFd_, EPOLLIN, [this, &loop](uint32_t) { onReadable(loop); });
  if (!watched) {
    // Regular files cannot be polled (and a closed stdin not at all): read what there is now.
    onReadable(loop);
    return {};
  }
  attached_ = true;
  return {};
}

void HostConsole::detach(EventLoop& loop) {
  if (listener_.valid()) {
    loop.unwatch(listener_.get());
    std::lock_guard lock(clientMutex_);
    if (client_.valid()) loop.unwatch(client_.get());
  }
  if (attached_) loop.unwatch(inputFd_);
  attached_ = false;
  if (inputFd_ >= 0) {
    int flags = ::fcntl(inputFd_, F_GETFL);
    ::fcntl(inputFd_, F_SETFL, flags & ~O_NONBLOCK);
  }
}

void HostConsole::onReadable(EventLoop& loop) {
  uint8_t buffer[4096];
  for (;;) {
    ssize_t n = ::read(inputFd_, buffer, sizeof buffer);
    if (n > 0) {
      if (terminal_) filterEscapes(buffer, static_cast<size_t>(n));
      else onInput_(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // End of input (or a pty with no peer yet): stop watching; the guest runs on.
    if (n < 0 && errno == EIO && ownedInput_.valid()) return;
    if (attached_) loop.unwatch(inputFd_);
    attached_ = false;
    return;
  }
}

void HostConsole::filterEscapes(const uint8_t* data, size_t length) {
  std::vector<uint8_t> passed;
  passed.reserve(length);
  for (size_t i = 0; i < length; ++i) {
    uint8_t byte = data[i];
    if (escapePending_) {
      escapePending_ = false;
      if (byte == 'x' || byte == 'X') {
        onQuit_();
        return;
      }
      if (byte == 'h' || byte == 'H') {
        const char* help = "\r\nC-a x  quit strata\r\nC-a C-a  send C-a\r\n";
        writeAll(2, reinterpret_cast<const uint8_t*>(help), strlen(help));
        continue;
      }
      passed.push_back(byte);  // C-a C-a sends one C-a; unknown escapes pass the byte
      continue;
    }
    if (byte == kEscape) {
      escapePending_ = true;
      continue;
    }
    passed.push_back(byte);
  }
  if (!passed.empty()) onInput_(passed.data(), passed.size());
}

// A new client replaces the one before it (a restarted daemon connects again
// while the kernel may not yet have told us the old one is gone).
void HostConsole::acceptClient(EventLoop& loop) {
  UniqueFd accepted(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!accepted.valid()) return;
  dropClient(loop);
  int fd = accepted.get();
  {
    std::lock_guard lock(clientMutex_);
    client_ = std::move(accepted);
  }
  if (!loop.watch(fd, EPOLLIN, [this, &loop](uint32_t) { onClientReadable(loop); })) dropClient(loop);
}

void HostConsole::onClientReadable(EventLoop& loop) {
  uint8_t buffer[4096];
  for (;;) {
    ssize_t n;
    {
      std::lock_guard lock(clientMutex_);
      if (!client_.valid()) return;
      n = ::read(client_.get(), buffer, sizeof buffer);
    }
    if (n > 0) {
      onInput_(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    dropClient(loop);  // the client hung up
    return;
  }
}

void HostConsole::dropClient(EventLoop& loop) {
  std::lock_guard lock(clientMutex_);
  if (!client_.valid()) return;
  loop.unwatch(client_.get());
  client_.reset();
}

void HostConsole::write(const uint8_t* data, size_t length) {
  writeAll(outputFd_, data, length);
  std::lock_guard lock(clientMutex_);
  // Never blocks the vCPU: what the client's socket buffer cannot take now is not sent to it.
  if (client_.valid()) ::send(client_.get(), data, length, MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace strata::vmm
