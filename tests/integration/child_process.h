// Child: a process an integration test starts (posix_spawnp), fed a script on
// stdin, its stdout and stderr going to a log file; killed when it goes out of
// scope. Shared by the tests that run `strata switch` and `strata run` side by
// side, with openFlowTarget() for a switch started with `--openflow ptcp:0`.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace strata::test {

// A child process this test started, fed `input` on stdin, its output going to a file.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::string& input, const std::string& logPath) : log_(logPath) {
    int toChild[2];
    if (::pipe2(toChild, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, toChild[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(toChild[0]);
    if (!input.empty()) (void)!::write(toChild[1], input.data(), input.size());  // scripts fit the pipe
    ::close(toChild[1]);
  }
  ~Child() { kill(SIGKILL); }

  bool running() const { return pid_ > 0; }
  // Waits for the child to exit; false (still running) after the deadline.
  bool wait(std::chrono::seconds deadline) {
    auto end = std::chrono::steady_clock::now() + deadline;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return true;
  }
  void kill(int signal) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    wait(std::chrono::seconds(10));
  }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  int exitCode() const { return exitCode_; }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int exitCode_ = -1;
};

// The "tcp:127.0.0.1:PORT" a `strata switch ... --openflow ptcp:0` child printed; "" if it did not within 10 s.
inline std::string openFlowTarget(const Child& switchProcess) {
  std::regex listening("OpenFlow 1\\.3 at (tcp:127\\.0\\.0\\.1:[0-9]+)");
  for (int i = 0; i < 100; ++i) {
    std::smatch found;
    std::string log = switchProcess.output();
    if (std::regex_search(log, found, listening)) return found[1];
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "";
}

}  // namespace strata::test
