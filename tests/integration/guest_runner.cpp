#include "guest_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

extern char** environ;

namespace strata::test {
namespace {

ProcessResult runProcess(const std::vector<std::string>& argv, const std::string& input,
                         std::chrono::seconds deadline, const WhileRunning& whileRunning = {}) {
  int toChild[2], fromChild[2];
  if (::pipe2(toChild, O_CLOEXEC) != 0 || ::pipe2(fromChild, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, toChild[0], 0);
  posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fromChild[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(toChild[0]);
  ::close(fromChild[1]);
  ProcessResult result;
  if (spawned != 0) {
    ::close(toChild[1]);
    ::close(fromChild[0]);
    result.output = "spawn failed";
    return result;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::fcntl(toChild[1], F_SETFL, O_NONBLOCK);
  size_t written = 0;
  int inputFd = toChild[1];
  if (input.empty()) {
    ::close(inputFd);
    inputFd = -1;
  }
  auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      result.timedOut = true;
      break;
    }
    pollfd fds[2] = {{fromChild[0], POLLIN, 0}, {inputFd, POLLOUT, 0}};
    ::poll(fds, inputFd >= 0 ? 2 : 1, static_cast<int>(std::min<long>(left.count(), whileRunning ? 100 : 1000)));
    if (inputFd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(inputFd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) written = input.size();
      if (written == input.size()) {
        ::close(inputFd);
        inputFd = -1;
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char buffer[4096];
      ssize_t n = ::read(fromChild[0], buffer, sizeof buffer);
      if (n <= 0) break;
      result.output.append(buffer, static_cast<size_t>(n));
    }
    if (whileRunning) whileRunning(pid, result.output);
  }
  if (inputFd >= 0) ::close(inputFd);
  ::close(fromChild[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!result.timedOut) result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace

std::string strataBinary() { return STRATA_BINARY; }

std::string defaultGuestFile(const std::string& name) { return std::string(STRATA_SOURCE_DIR) + "/out/guest/" + name; }

std::filesystem::path temporaryDirectory() {
  return std::filesystem::temp_directory_path() / ("strata-it-" + std::to_string(::getpid()));
}

// Removes the disk copies and logs the tests made once the whole run is over.
class TemporaryDirectoryCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(temporaryDirectory(), ignored);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TemporaryDirectoryCleanup);

std::string temporaryPath(const std::string& name) {
  auto dir = temporaryDirectory();
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string copyOfRootDisk(const std::string& testName) {
  std::string copy = temporaryPath(testName + "-rootfs.ext4");
  std::filesystem::copy_file(defaultGuestFile("rootfs.ext4"), copy, std::filesystem::copy_options::overwrite_existing);
  return copy;
}

TapNamespace::TapNamespace() : name_("strata-it-" + std::to_string(::getpid())) {
  auto made = runShell("ip netns add " + name_ + " && ip netns exec " + name_ +
                       " sh -c 'ip tuntap add dev stap0 mode tap && ip addr add 10.77.0.1/24 dev stap0 && "
                       "ip link set stap0 up && ip link set lo up' 2>&1");
  ok_ = made.exitCode == 0;
  why_ = made.output;
}

TapNamespace::~TapNamespace() { runShell("ip netns delete " + name_ + " 2>/dev/null"); }

ProcessResult runStrata(const std::vector<std::string>& args, const std::string& input, std::chrono::seconds deadline,
                        const WhileRunning& whileRunning) {
  std::vector<std::string> argv{strataBinary(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runProcess(argv, input, deadline, whileRunning);
}

::testing::AssertionResult contains(const std::string& output, const std::string& text) {
  if (output.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" not in the output:\n" << output;
}

std::string parallelHashCommands(int jobs, int last) {
  std::string ids;
  for (int i = 1; i <= jobs; ++i) ids += (i > 1 ? " " : "") + std::to_string(i);
  std::string slices = std::to_string(jobs) + " " + std::to_string(last);
  return "for i in " + ids + "; do (seq $i " + slices + " | sha256sum > /tmp/sum$i) & done; wait\n" +
         "for i in " + ids + "; do echo job$i=$(cut -c1-16 /tmp/sum$i); done\n";
}

::testing::AssertionResult hasParallelHashes(const std::string& output, int jobs, int last) {
  for (int i = 1; i <= jobs; ++i) {
    std::string job = std::to_string(i);
    auto expected = runShell("seq " + job + " " + std::to_string(jobs) + " " + std::to_string(last) +
                             " | sha256sum | cut -c1-16");
    auto found = contains(output, "job" + job + "=" + expected.output.substr(0, 16) + "\r\n");
    if (!found) return found;
  }
  return ::testing::AssertionSuccess();
}

ProcessResult runShell(const std::string& command) {
  return runProcess({"/bin/sh", "-c", command}, "", std::chrono::seconds(120));
}

}  // namespace strata::test
