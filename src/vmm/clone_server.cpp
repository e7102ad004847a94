#include "vmm/clone_server.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fmt/core.h>

#include "base/log.h"
#include "base/unix_socket.h"

namespace strata::vmm {
namespace {

constexpr std::string_view kMagic = "strata-clone 1";
constexpr size_t kMaxMessageBytes = 64 * 1024;
constexpr size_t kRequestFds = 4;  // stdin, stdout, stderr, working directory

struct Request {
  std::vector<std::string> args;
  std::array<UniqueFd, kRequestFds> fds;  // stdio, then the working directory
};

struct Clone {
  pid_t pid;
  UniqueFd pidfd;       // readable once the clone ended
  UniqueFd connection;  // its client
};

void reply(int connection, const std::string& text) { ::send(connection, text.data(), text.size(), MSG_NOSIGNAL); }

// One request message; every descriptor it carried is owned (closed) whatever the verdict.
Result<Request> readRequest(int connection) {
  std::vector<char> buffer(kMaxMessageBytes);
  iovec data{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kRequestFds + 4))];
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  const ssize_t length = ::recvmsg(connection, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (length < 0) return errnoError("reading the request");
  std::vector<UniqueFd> fds;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t index = 0; index < count; ++index) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + index * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  if (length == 0) return Error{"the client closed the connection without a request"};
  if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    return Error{fmt::format("a request is at most {} bytes and {} descriptors", kMaxMessageBytes, kRequestFds)};
  const std::string_view payload(buffer.data(), static_cast<size_t>(length));
  if (!payload.starts_with(kMagic) || payload.size() <= kMagic.size() || payload[kMagic.size()] != '\0' ||
      payload.back() != '\0')
    return Error{fmt::format("not a clone request (expected \"{}\\0\" then NUL-terminated arguments)", kMagic)};
  if (fds.size() != kRequestFds)
    return Error{fmt::format("a request passes {} descriptors (stdin, stdout, stderr, working directory), not {}",
                             kRequestFds, fds.size())};
  Request request;
  for (size_t start = kMagic.size() + 1; start < payload.size();) {
    const size_t end = payload.find('\0', start);
    request.args.emplace_back(payload.substr(start, end - start));
    start = end + 1;
  }
  for (size_t index = 0; index < kRequestFds; ++index) request.fds[index] = std::move(fds[index]);
  if (::fchdir(request.fds[3].get()) != 0) return Error{"the fourth descriptor is not a working directory"};
  return request;
}

// The forked child: the client's stdio and directory, a session of its own, then the VM. Never returns.
[[noreturn]] void becomeClone(Request& request, const VmConfig& config, std::unique_ptr<WarmBoard> warm,
                              const CloneServerHooks& hooks) {
  for (int target = 0; target < 3; ++target) ::dup2(request.fds[target].get(), target);
  if (::fchdir(request.fds[3].get()) != 0) {
    log::error("clone: entering the client's working directory: {}", std::strerror(errno));
    ::_exit(1);
  }
  for (auto& fd : request.fds) fd.reset();
  ::setsid();  // the server's terminal signals are not the clone's
  const int status = hooks.run(config, std::move(warm));
  std::fflush(nullptr);
  ::_exit(status);
}

// The server's own record of what it does, on its stderr whatever the log level (clone_bench.py and the tests read it).
template <typename... Args>
void record(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "strata: {}\n", fmt::format(format, std::forward<Args>(args)...));
}

std::string endOf(int status) {
  return WIFSIGNALED(status) ? fmt::format("killed {}", WTERMSIG(status)) : fmt::format("exited {}", WEXITSTATUS(status));
}

class Server {
 public:
  Server(UniqueFd listener, std::unique_ptr<WarmBoard> warm, const CloneServerHooks& hooks)
      : listener_(std::move(listener)), warm_(std::move(warm)), hooks_(hooks) {}

  Result<void> serve() {
    UniqueFd home(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!home.valid()) return errnoError("the server's working directory");
    home_ = std::move(home);
    for (;;) {
      std::vector<pollfd> polled{{listener_.get(), POLLIN, 0}};
      for (const UniqueFd& connection : waiting_) polled.push_back({connection.get(), POLLIN, 0});
      for (const Clone& clone : clones_) polled.push_back({clone.pidfd.get(), POLLIN, 0});
      if (::poll(polled.data(), polled.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return errnoError("poll");
      }
      // From the back, so the indexes of what is still to look at stay valid.
      for (size_t index = clones_.size(); index-- > 0;)
        if (polled[1 + waiting_.size() + index].revents) reap(index);
      for (size_t index = waiting_.size(); index-- > 0;)
        if (polled[1 + index].revents) answer(index);
      if (polled[0].revents & POLLIN) {
        UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (connection.valid()) waiting_.push_back(std::move(connection));
      }
    }
  }

 private:
  void answer(size_t index) {
    UniqueFd connection = std::move(waiting_[index]);
    waiting_.erase(waiting_.begin() + static_cast<ptrdiff_t>(index));
    auto request = readRequest(connection.get());
    auto config = request ? hooks_.parse(request->args) : Result<VmConfig>(request.error());
    if (::fchdir(home_.get()) != 0) log::warn("clone server: back to its working directory: {}", std::strerror(errno));
    if (!config) {
      record("clone request refused: {}", config.error().message);
      reply(connection.get(), "refused " + config.error().message);
      return;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      closeServerFds();
      becomeClone(*request, *config, std::move(warm_), hooks_);
    }
    if (pid < 0) {
      reply(connection.get(), "refused " + errnoError("fork").message);
      return;
    }
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd.valid()) {  // cannot follow it: it runs on, unreported
      reply(connection.get(), "refused " + errnoError("pidfd_open").message);
      return;
    }
    record("clone {} started", pid);
    reply(connection.get(), fmt::format("started {}", pid));
    clones_.push_back({pid, std::move(pidfd), std::move(connection)});
    // The request's parse (which reads the snapshot's state file) freed what the clone still shares: handed back,
    // the server's next request does not copy those pages into the server by writing them again.
    ::malloc_trim(0);
  }

  void reap(size_t index) {
    int status = 0;
    if (::waitpid(clones_[index].pid, &status, WNOHANG) != clones_[index].pid) return;
    record("clone {} {}", clones_[index].pid, endOf(status));
    reply(clones_[index].connection.get(), endOf(status));
    clones_.erase(clones_.begin() + static_cast<ptrdiff_t>(index));
  }

  // In the child: none of the server's sockets, other clients or clones stay open in a clone.
  void closeServerFds() {
    listener_.reset();
    home_.reset();
    waiting_.clear();
    clones_.clear();
  }

  UniqueFd listener_;
  UniqueFd home_;
  std::unique_ptr<WarmBoard> warm_;
  const CloneServerHooks& hooks_;
  std::vector<UniqueFd> waiting_;  // connected, request not read yet
  std::vector<Clone> clones_;
};

std::atomic<pid_t> forwardTo{0};

void forwardSignal(int signal) {
  const pid_t pid = forwardTo.load();
  if (pid > 0) ::kill(pid, signal);
}

// One reply: its text, empty at the end of the connection.
Result<std::string> receiveReply(int connection) {
  char buffer[1024];
  for (;;) {
    const ssize_t length = ::recv(connection, buffer, sizeof buffer, 0);
    if (length >= 0) return std::string(buffer, static_cast<size_t>(length));
    if (errno != EINTR) return errnoError("reading the clone server's reply");
  }
}

std::optional<int> numberAfter(const std::string& text, std::string_view word) {
  if (!text.starts_with(word)) return std::nullopt;
  int value = 0;
  auto [end, error] = std::from_chars(text.data() + word.size(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

Result<void> serveClones(const std::string& socketPath, std::unique_ptr<WarmBoard> warm, const CloneServerHooks& hooks) {
  auto listener = bindUnixSocket(socketPath, SOCK_SEQPACKET, "--clone-server");
  if (!listener) return listener.error();
  ::malloc_trim(0);  // nothing the warm-up freed stays resident, for the server to hold and each clone to inherit
  record("clone server on {}: {} blocks of {} warm", socketPath, warm->warmedBlocks(), warm->restoreDir());
  return Server(std::move(*listener), std::move(warm), hooks).serve();
}

Result<int> requestClone(const std::string& socketPath, const std::vector<std::string>& args) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socketPath.empty() || socketPath.size() >= sizeof address.sun_path)
    return Error{fmt::format("--clone-server {}: the path must be 1 to {} bytes", socketPath, sizeof address.sun_path - 1)};
  std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);
  UniqueFd connection(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!connection.valid()) return errnoError("socket(AF_UNIX)");
  if (::connect(connection.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return errnoError(fmt::format("--clone-server {}", socketPath));
  UniqueFd directory(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory.valid()) return errnoError("the working directory");

  std::string payload(kMagic);
  payload += '\0';
  for (const std::string& arg : args) (payload += arg) += '\0';
  const int fds[kRequestFds] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, directory.get()};
  if (auto sent = sendWithDescriptors(connection.get(), payload, fds); !sent)
    return Error{fmt::format("--clone-server {}: sending the request: {}", socketPath, sent.error().message)};

  auto started = receiveReply(connection.get());
  if (!started) return started.error();
  if (started->starts_with("refused ")) return Error{started->substr(8)};
  auto pid = numberAfter(*started, "started ");
  if (!pid || *pid <= 0) return Error{fmt::format("--clone-server {}: unexpected reply \"{}\"", socketPath, *started)};
  forwardTo = *pid;
  struct sigaction forward {};
  forward.sa_handler = forwardSignal;
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &forward, nullptr);

  auto ended = receiveReply(connection.get());
  if (!ended) return ended.error();
  if (auto status = numberAfter(*ended, "exited ")) return *status;
  if (auto signal = numberAfter(*ended, "killed ")) {
    log::error("the clone (pid {}) was killed by signal {}", *pid, *signal);
    return 128 + *signal;
  }
  if (ended->empty()) return Error{fmt::format("the clone server went away; clone {} ended, its status unknown", *pid)};
  return Error{fmt::format("--clone-server {}: unexpected reply \"{}\"", socketPath, *ended)};
}

}  // namespace strata::vmm
