// The per-VM control API (`strata run --api-socket`, driven by `strata vm` and
// by raw HTTP): pause stops the guest and its clock, resume continues, reset
// reboots, shutdown exits 0, and bad requests get a 4xx JSON answer while the
// guest runs on. The sandbox stays on (the default).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstring>
#include <map>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

using Clock = std::chrono::steady_clock;

// Prints "tick<N> up=<the guest's /proc/uptime>" every 0.1 s of guest time.
const std::string kTickLoop =
    "stty -echo\n"
    "i=0; while true; do i=$((i+1)); echo tick$i up=$(cut -d' ' -f1 /proc/uptime); sleep 0.1; done\n";

struct Tick {
  int number;
  double guestUptime;
  Clock::time_point seen;  // when the host read it
};

// Collects the tick lines of the output as they arrive, stamped with the host time.
class TickLog {
 public:
  void update(const std::string& output) {
    static const std::regex line(R"(tick(\d+) up=([0-9.]+)\r?\n)");
    auto now = Clock::now();
    auto from = output.cbegin() + static_cast<long>(scanned_);
    for (std::smatch match; std::regex_search(from, output.cend(), match, line); from = match[0].second)
      ticks_.push_back({std::stoi(match[1]), std::stod(match[2]), now});
    scanned_ = static_cast<size_t>(from - output.cbegin());
  }
  size_t count() const { return ticks_.size(); }
  const std::vector<Tick>& ticks() const { return ticks_; }

 private:
  size_t scanned_ = 0;
  std::vector<Tick> ticks_;
};

ProcessResult strataVm(const std::string& action, const std::string& socket) {
  return runShell(strataBinary() + " vm " + action + " --api-socket " + socket + " 2>&1");
}

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// Sends `request` as it is (any bytes) and reads the answer until the server closes.
HttpAnswer rawHttp(const std::string& socketPath, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socketPath.c_str(), sizeof address.sun_path - 1);
  HttpAnswer answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return answer;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may refuse an oversize body before reading it all
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  std::smatch status;
  if (std::regex_search(response, status, std::regex(R"(^HTTP/1\.1 (\d{3}))"))) answer.status = std::stoi(status[1]);
  size_t bodyStart = response.find("\r\n\r\n");
  if (bodyStart != std::string::npos) answer.body = response.substr(bodyStart + 4);
  return answer;
}

std::string put(const std::string& path, const std::string& body) {
  return "PUT " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string socketPath(const std::string& name) {
  std::string path = temporaryPath(name);
  ::unlink(path.c_str());
  return path;
}

TEST(VmApi, PauseStopsTheGuestAndItsClockAndResumeContinuesWhereItStopped) {
  const std::string socket = socketPath("pause.sock");
  constexpr auto kPause = std::chrono::seconds(2);
  TickLog log;
  enum class Phase { Booting, Paused, Resumed, Done } phase = Phase::Booting;
  Clock::time_point pausedAt;
  size_t ticksShortlyAfterPause = 0, ticksAtPauseEnd = 0;
  int lastTickBeforePause = 0;
  std::string failures;
  auto run = runStrata({"--api-socket", socket}, kTickLoop, std::chrono::seconds(240), [&](pid_t, const std::string& output) {
    log.update(output);
    switch (phase) {
      case Phase::Booting:
        if (log.count() < 5) return;
        if (auto paused = strataVm("pause", socket); paused.exitCode != 0 || paused.output != "paused\n")
          failures += "pause: " + paused.output;
        pausedAt = Clock::now();
        phase = Phase::Paused;
        return;
      case Phase::Paused:
        // Output the guest wrote before it parked is read within the first moments.
        if (ticksShortlyAfterPause == 0 && Clock::now() - pausedAt > std::chrono::milliseconds(300)) {
          ticksShortlyAfterPause = log.count();
          lastTickBeforePause = log.ticks().back().number;
        }
        if (Clock::now() - pausedAt < kPause) return;
        ticksAtPauseEnd = log.count();
        if (auto resumed = strataVm("resume", socket); resumed.exitCode != 0 || resumed.output != "running\n")
          failures += "resume: " + resumed.output;
        phase = Phase::Resumed;
        return;
      case Phase::Resumed:
        if (log.count() < ticksAtPauseEnd + 5) return;
        if (auto stopped = strataVm("shutdown", socket); stopped.exitCode != 0) failures += "shutdown: " + stopped.output;
        phase = Phase::Done;
        return;
      case Phase::Done: return;
    }
  });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << "shutdown through the API ends strata run with 0\n" << run.output;
  EXPECT_TRUE(failures.empty()) << failures;
  ASSERT_EQ(phase, Phase::Done) << run.output;
  EXPECT_NE(::access(socket.c_str(), F_OK), 0) << "the socket file outlived the VM";

  EXPECT_EQ(ticksShortlyAfterPause, ticksAtPauseEnd) << "the guest made progress while paused";
  // The loop runs on from the tick it was at: no tick lost or repeated.
  const auto& ticks = log.ticks();
  for (size_t i = 1; i < ticks.size(); ++i) ASSERT_EQ(ticks[i].number, ticks[i - 1].number + 1) << run.output;
  // Across the pause the host's clock moved on by the pause; the guest's did not.
  auto before = std::find_if(ticks.begin(), ticks.end(), [&](const Tick& t) { return t.number == lastTickBeforePause; });
  ASSERT_TRUE(before != ticks.end() && before + 1 != ticks.end());
  const Tick& after = *(before + 1);
  double hostGap = std::chrono::duration<double>(after.seen - before->seen).count();
  double guestGap = after.guestUptime - before->guestUptime;
  EXPECT_GT(hostGap - guestGap, 0.7 * std::chrono::duration<double>(kPause).count())
      << "host gap " << hostGap << " s, guest gap " << guestGap << " s: the guest's clock ran during the pause";
  EXPECT_GE(guestGap, 0.1) << "the guest's clock went back or stood still while it ran";
}

TEST(VmApi, ResetRebootsTheGuestAndStatusDescribesIt) {
  const std::string socket = socketPath("reset.sock");
  const std::string up = "strata-guest: userspace up";
  enum class Phase { Booting, Rebooting, Done } phase = Phase::Booting;
  std::string failures, status;
  auto boots = [&](const std::string& output) {
    size_t count = 0;
    for (size_t at = output.find(up); at != std::string::npos; at = output.find(up, at + 1)) ++count;
    return count;
  };
  auto run = runStrata({"--api-socket", socket}, "", std::chrono::seconds(240), [&](pid_t, const std::string& output) {
    if (phase == Phase::Booting && boots(output) == 1) {
      status = strataVm("status --json", socket).output;
      if (auto reset = strataVm("reset", socket); reset.exitCode != 0) failures += "reset: " + reset.output;
      phase = Phase::Rebooting;
    } else if (phase == Phase::Rebooting && boots(output) == 2) {
      if (auto stopped = strataVm("shutdown", socket); stopped.exitCode != 0) failures += "shutdown: " + stopped.output;
      phase = Phase::Done;
    }
  });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(failures.empty()) << failures;
  EXPECT_EQ(phase, Phase::Done) << run.output;
  EXPECT_TRUE(contains(status, "\"state\": \"running\""));
  EXPECT_TRUE(contains(status, "\"vcpus\": 1"));
  EXPECT_TRUE(contains(status, "\"memory_bytes\": 268435456"));
  EXPECT_TRUE(contains(status, "\"engine\": \"jit\""));
}

// --mem-merge: the API thread reads the VM's KSM figure (sandbox on) for status and stats.
TEST(VmApi, MemMergeShowsMergedPagesInStatus) {
  if (::access("/proc/self/ksm_merging_pages", R_OK) != 0)
    GTEST_SKIP() << "this host kernel does not count merged pages per process (no /proc/self/ksm_merging_pages)";
  const std::string socket = socketPath("merge.sock");
  std::string json, text;
  auto run = runStrata({"--mem-merge", "--api-socket", socket}, "", std::chrono::seconds(240),
                       [&](pid_t, const std::string& output) {
                         if (!json.empty() || output.find("strata-guest: userspace up") == std::string::npos) return;
                         json = strataVm("status --json", socket).output;
                         text = strataVm("status", socket).output;
                         strataVm("shutdown", socket);
                       });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(json, "\"ksm_merging_pages\": "));
  EXPECT_TRUE(contains(text, "pages merged by the host's KSM"));
}

TEST(VmApi, BadRequestsGetA4xxJsonErrorAndTheGuestRunsOn) {
  const std::string socket = socketPath("bad.sock");
  TickLog log;
  size_t ticksAfterBadRequests = 0;
  bool done = false;
  std::vector<std::pair<std::string, HttpAnswer>> answers;
  ProcessResult afterwards;
  auto run = runStrata({"--api-socket", socket}, kTickLoop, std::chrono::seconds(240), [&](pid_t, const std::string& output) {
    log.update(output);
    if (done || log.count() < 3) return;
    if (ticksAfterBadRequests == 0) {
      answers = {
          {"malformed JSON", rawHttp(socket, put("/vm/state", R"({"action": )"))},
          {"unknown action", rawHttp(socket, put("/vm/state", R"({"action": "explode"})"))},
          {"action of the wrong type", rawHttp(socket, put("/vm/state", R"({"action": ["pause"]})"))},
          {"oversize body", rawHttp(socket, put("/vm/state", std::string(200 * 1024, ' ')))},
          {"unknown route", rawHttp(socket, "GET /vm/nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")},
          {"wrong method", rawHttp(socket, put("/vm", "{}"))},
          {"not HTTP", rawHttp(socket, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n", 14))},
      };
      ticksAfterBadRequests = log.count();
      return;
    }
    if (log.count() < ticksAfterBadRequests + 3) return;  // the guest still runs its loop
    afterwards = strataVm("status", socket);
    strataVm("shutdown", socket);
    done = true;
  });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  ASSERT_TRUE(done) << run.output;
  std::map<std::string, int> expected{{"malformed JSON", 400}, {"unknown action", 400}, {"action of the wrong type", 400},
                                      {"oversize body", 413},  {"unknown route", 404},  {"wrong method", 405},
                                      {"not HTTP", 400}};
  for (const auto& [what, answer] : answers) {
    EXPECT_EQ(answer.status, expected[what]) << what << ": " << answer.body;
    EXPECT_TRUE(contains(answer.body, "{\"error\":\"")) << what;
  }
  EXPECT_EQ(afterwards.exitCode, 0) << afterwards.output;
  EXPECT_TRUE(contains(afterwards.output, "state:   running"));
}

TEST(VmApi, StaleSocketFileIsReplacedALiveOneRefused) {
  const std::string socket = socketPath("stale.sock");
  {  // what a VM killed without cleaning up leaves behind: a socket file nobody serves
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  ProcessResult second;
  mode_t mode = 0;
  bool done = false;
  auto run = runStrata({"--api-socket", socket}, "", std::chrono::seconds(240), [&](pid_t, const std::string& output) {
    if (done || output.find("strata-guest: userspace up") == std::string::npos) return;
    struct stat st {};
    if (::stat(socket.c_str(), &st) == 0) mode = st.st_mode & 0777;
    second = runStrata({"--api-socket", socket}, "", std::chrono::seconds(60));
    strataVm("shutdown", socket);
    done = true;
  });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  ASSERT_TRUE(done) << run.output;
  EXPECT_EQ(mode, 0600u);
  EXPECT_EQ(second.exitCode, 1) << second.output;
  EXPECT_TRUE(contains(second.output, "another process is serving on it"));
}

}  // namespace
}  // namespace strata::test
