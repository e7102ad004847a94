// DaemonProcess: one `strata daemon` child with its own data directory, for
// the daemon's integration tests (API, console); VMs it left running are
// killed at the end. With waitFor, the polling those tests need.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/http_client.h"
#include "guest_runner.h"

namespace strata::test {

using nlohmann::json;

inline std::string readFile(const std::string& path) {
  std::ifstream file(path);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// Polls `ready` every 50 ms for up to `limit`; whether it became true.
template <typename Ready>
bool waitFor(Ready ready, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

class DaemonProcess {
 public:
  // `extraArgs` go to `strata daemon` after the test's own options; files they
  // name may be put in DATADIR by `prepare`.
  explicit DaemonProcess(const std::string& name, std::vector<std::string> extraArgs = {},
                         const std::function<void(const std::string& dataDir)>& prepare = nullptr)
      : dataDir_(temporaryPath(name)), extraArgs_(std::move(extraArgs)) {
    std::filesystem::remove_all(dataDir_);
    std::filesystem::create_directories(dataDir_);
    if (prepare) prepare(dataDir_);
    start();
  }
  ~DaemonProcess() {
    if (pid_ > 0) {
      for (const auto& vm : call("GET", "/vms").second)
        if (vm.contains("pid")) ::kill(vm["pid"].get<pid_t>(), SIGKILL);
      stop(SIGTERM);
    }
  }

  void start() {
    std::fflush(nullptr);  // or the child would write the test's unwritten output again
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string log = dataDir_ + ".log";
      FILE* out = std::freopen(log.c_str(), "a", stdout);
      if (out) ::dup2(STDOUT_FILENO, STDERR_FILENO);
      std::vector<std::string> args = {strataBinary(), "daemon", "--data-dir", dataDir_, "--socket", socket(),
                                       "--meter-interval", "1", "--shutdown-timeout", "20"};
      args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    bool up = waitFor([&] { return ::access(socket().c_str(), F_OK) == 0 && raw("GET", "/openapi.json").status == 200; },
                      std::chrono::seconds(20));
    ASSERT_TRUE(up) << readFile(dataDir_ + ".log");
    adminToken_ = readFile(dataDir_ + "/admin.token");
    if (!adminToken_.empty()) adminToken_.pop_back();  // the newline
  }
  void stop(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  control::HttpReply raw(const std::string& method, const std::string& path, const std::string& body = "",
                         const std::string& token = "") {
    auto reply = control::httpOverUnixSocket(socket(), {method, path, body, token, std::chrono::seconds(120)});
    return reply ? *reply : control::HttpReply{-1, reply.error().message};
  }
  // (status, parsed body); the admin token unless another is given.
  std::pair<int, json> call(const std::string& method, const std::string& path, const json& body = nullptr,
                            const std::string& token = "") {
    auto reply = raw(method, path, body.is_null() ? "" : body.dump(), token.empty() ? adminToken_ : token);
    return {reply.status, json::parse(reply.body, nullptr, false)};
  }
  std::string newTenantToken(const std::string& tenant) {
    EXPECT_EQ(call("POST", "/tenants", {{"name", tenant}}).first, 201);
    auto [status, body] = call("POST", "/tenants/" + tenant + "/tokens");
    EXPECT_EQ(status, 201) << body;
    return body.value("token", "");
  }

  std::string socket() const { return dataDir_ + "/daemon.sock"; }
  const std::string& dataDir() const { return dataDir_; }
  const std::string& adminToken() const { return adminToken_; }
  pid_t pid() const { return pid_; }

 private:
  std::string dataDir_, adminToken_;
  std::vector<std::string> extraArgs_;
  pid_t pid_ = -1;
};

// Before a TLS daemon starts: DIR/cert.pem (for localhost and 127.0.0.1, also the
// clients' CA file) and DIR/key.pem.
inline void makeSelfSignedCertificate(const std::string& dir) {
  auto made = runShell("cd " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 "
                       "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;
}

// Types `line` on a console socket until the console log shows `answer` (the guest may not read it yet).
inline bool consoleAnswers(const std::string& consoleSocket, const std::string& consoleLog, const std::string& line,
                           const std::string& answer) {
  auto socket = control::connectUnixSocket(consoleSocket);
  if (!socket) return false;
  auto sent = std::chrono::steady_clock::time_point{};
  return waitFor([&] {
    if (std::chrono::steady_clock::now() - sent > std::chrono::seconds(3)) {
      ::send(socket->get(), line.data(), line.size(), MSG_NOSIGNAL);
      sent = std::chrono::steady_clock::now();
    }
    return readFile(consoleLog).find(answer) != std::string::npos;
  }, std::chrono::seconds(60));
}

// The same on a daemon VM's console.
inline bool consoleAnswers(DaemonProcess& daemon, const std::string& vm, const std::string& line, const std::string& answer) {
  std::string dir = daemon.dataDir() + "/vms/" + vm;
  return consoleAnswers(dir + "/tty.sock", dir + "/console.log", line, answer);
}

// Types `line` once on a daemon VM's console (its shell already answers) and waits for `answer` in its log.
inline bool typeOnce(DaemonProcess& daemon, const std::string& vm, const std::string& line, const std::string& answer) {
  std::string dir = daemon.dataDir() + "/vms/" + vm;
  auto socket = control::connectUnixSocket(dir + "/tty.sock");
  if (!socket || ::send(socket->get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    return false;
  return waitFor([&] { return readFile(dir + "/console.log").find(answer) != std::string::npos; },
                 std::chrono::seconds(120));
}

// The host switch a daemon started ("PID STARTTIME" in DATADIR/run/switch.pid).
inline pid_t hostSwitchPid(DaemonProcess& daemon) {
  std::ifstream file(daemon.dataDir() + "/run/switch.pid");
  pid_t pid = 0;
  file >> pid;
  return pid;
}

// Stops the daemon's host switch at the end, whatever the test's outcome (the daemon leaves it running).
struct HostSwitchReaper {
  DaemonProcess& daemon;
  ~HostSwitchReaper() {
    if (pid_t pid = hostSwitchPid(daemon); pid > 0) ::kill(pid, SIGKILL);
  }
};

// Whether the process is gone (or a zombie nobody has reaped yet).
inline bool processEnded(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close + 2, 1, "Z") == 0;
}

// (status, error message) of a request the test expects refused.
inline void expectRefused(DaemonProcess& daemon, const std::string& method, const std::string& path, const json& body,
                          const std::string& token, int expected, const std::string& message) {
  auto [got, reply] = daemon.call(method, path, body, token);
  EXPECT_EQ(got, expected) << method << " " << path << " " << body << " " << reply;
  EXPECT_NE(reply.value("error", "").find(message), std::string::npos) << path << " " << body << " " << reply;
}

// Follows an operation a 202 reply started (its "operation") to its end; the final operation.
inline json finishOperation(DaemonProcess& daemon, const json& started, const std::string& token = "") {
  std::string id = started["operation"]["id"];
  json operation;
  waitFor([&] {
    operation = daemon.call("GET", "/operations/" + id, nullptr, token).second;
    return operation.value("state", "") != "running";
  }, std::chrono::seconds(180));
  return operation;
}

// Imports a template (POST /templates `request`) and follows the operation to its end; the final operation.
inline json importTemplate(DaemonProcess& daemon, const json& request, const std::string& token = "") {
  auto [status, started] = daemon.call("POST", "/templates", request, token);
  EXPECT_EQ(status, 202) << started;
  if (status != 202) return started;
  return finishOperation(daemon, started, token);
}

}  // namespace strata::test
