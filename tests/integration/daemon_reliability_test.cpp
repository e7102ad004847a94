// `strata daemon` under stress: many concurrent API clients and many VM
// start/stop cycles must leave its descriptors, threads, children and memory
// where they were after a warm-up (figures read from /proc, printed).
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "daemon_process.h"

namespace strata::test {
namespace {

using nlohmann::json;

// What /proc says about one process and its children.
struct ProcessFigures {
  size_t fds = 0, threads = 0, children = 0, zombies = 0;
  uint64_t rssKib = 0;
  std::string openFiles;  // "fd -> target" lines, to name a leak

  std::string summary() const {
    return fmt::format("fds {}, threads {}, children {} ({} zombies), RSS {} KiB", fds, threads, children, zombies,
                       rssKib);
  }
};

// A /proc file, by read(2): a stream throws when the process ends while it is read.
std::string readProcFile(const std::string& path) {
  std::string text;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  char buffer[4096];
  for (ssize_t n; fd >= 0 && (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
  if (fd >= 0) ::close(fd);
  return text;
}

std::vector<std::string> directoryEntries(const std::string& path) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// (parent pid, state letter) from /proc/PID/stat, or nullopt when it is gone.
std::optional<std::pair<pid_t, char>> parentAndState(const std::string& pid) {
  std::string stat = readProcFile("/proc/" + pid + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 4 >= stat.size()) return std::nullopt;
  char state = stat[close + 2];
  return std::pair{static_cast<pid_t>(std::atoi(stat.c_str() + close + 4)), state};
}

ProcessFigures figuresOf(pid_t pid) {
  ProcessFigures figures;
  std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& fd : directoryEntries(proc + "/fd")) {
    ++figures.fds;
    std::error_code error;
    figures.openFiles += fd + " -> " + std::filesystem::read_symlink(proc + "/fd/" + fd, error).string() + "\n";
  }
  figures.threads = directoryEntries(proc + "/task").size();
  for (const auto& entry : directoryEntries("/proc")) {
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    auto parent = parentAndState(entry);
    if (!parent || parent->first != pid) continue;
    ++figures.children;
    if (parent->second == 'Z') ++figures.zombies;
  }
  std::string status = readProcFile(proc + "/status");
  if (size_t at = status.find("VmRSS:"); at != std::string::npos) figures.rssKib = std::stoull(status.substr(at + 6));
  return figures;
}

// The figures once the daemon is quiet: the same descriptor and thread counts
// in four samples 500 ms apart (connections still closing make them move).
ProcessFigures settledFigures(pid_t pid) {
  ProcessFigures last = figuresOf(pid);
  for (int i = 0, same = 0; i < 60 && same < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ProcessFigures now = figuresOf(pid);
    same = now.fds == last.fds && now.threads == last.threads && now.zombies == 0 ? same + 1 : 0;
    last = now;
  }
  return last;
}

// Sends raw bytes to the daemon's socket and reads until `until` appears in
// the answer, the daemon closes, or 10 s pass; what came back.
std::string rawExchange(const std::string& socket, const std::string& request, const std::string& until = "") {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  socket.copy(address.sun_path, sizeof address.sun_path - 1);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
      answer.append(buffer, static_cast<size_t>(n));
      if (!until.empty() && answer.find(until) != std::string::npos) break;
    }
  }
  ::close(fd);
  return answer;
}

// Statuses the clients saw, and the first unexpected answers.
struct Tally {
  std::mutex mutex;
  std::map<int, size_t> statuses;
  size_t requests = 0, unexpected = 0, cycles = 0;
  std::vector<std::string> surprises;

  void count(const std::string& what, int status, int expected, const std::string& body) {
    std::lock_guard lock(mutex);
    ++requests;
    ++statuses[status];
    if (status == expected) return;
    ++unexpected;
    if (surprises.size() < 10) surprises.push_back(fmt::format("{}: {} (expected {}): {}", what, status, expected, body));
  }
};

// One client's mix of requests, round after round, until `stop`: list, info,
// define, delete, a wrong token, malformed JSON, and an event stream it leaves.
void runClient(DaemonProcess& daemon, int client, const std::atomic<bool>& stop, Tally& tally) {
  std::string token = daemon.adminToken();
  for (int round = 0; !stop; ++round) {
    std::string name = fmt::format("c{}-{}", client, round);
    auto check = [&](const std::string& method, const std::string& path, const std::string& body, int expected,
                     const std::string& with = "") {
      auto reply = daemon.raw(method, path, body, with.empty() ? token : with);
      tally.count(method + " " + path, reply.status, expected, reply.body.substr(0, 200));
    };
    check("GET", "/vms", "", 200);
    check("POST", "/vms", json{{"name", name}, {"memory_mib", 64}}.dump(), 201);
    check("GET", "/vms/" + name, "", 200);
    check("GET", "/openapi.json", "", 200);
    check("GET", "/tenants", "", 200);
    check("GET", "/vms", "", 401, "strata_wrong");
    check("POST", "/vms", "{\"name\": ", 400);
    check("DELETE", "/vms/" + name, "", 200);
    if (round % 10 == client % 10) {  // subscribe to the event stream and hang up at once
      std::string answer = rawExchange(daemon.socket(),
                                       "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n",
                                       ": subscribed");
      int status = answer.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(answer.c_str() + 9) : -1;
      tally.count("GET /events", status, 200, answer.substr(0, 200));
    }
  }
}

// Start/stop cycles, each of a new VM: define, start, attach a console viewer
// (a WebSocket it then drops), stop (destroy and a shutdown with no grace in turn), delete.
void runCycles(DaemonProcess& daemon, int cycles, Tally& tally) {
  for (int cycle = 0; cycle < cycles; ++cycle) {
    std::string name = fmt::format("cycle{}", cycle), path = "/vms/" + name;
    auto [defined, spec] = daemon.call("POST", "/vms", {{"name", name}, {"memory_mib", 128}});
    tally.count("define " + name, defined, 201, spec.dump().substr(0, 300));
    auto [started, vm] = daemon.call("POST", path + "/start");
    tally.count("start " + name, started, 200, vm.dump().substr(0, 300));
    if (started == 200) {
      tally.count("state after start", vm.value("state", "") == "running" ? 200 : 500, 200, vm.dump());
      std::string answer = rawExchange(daemon.socket(),
                                       "GET " + path + "/console HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer " +
                                           daemon.adminToken() + "\r\n\r\n",
                                       "\r\n\r\n");
      tally.count("console " + name, answer.rfind("HTTP/1.1 101", 0) == 0 ? 101 : 500, 101, answer.substr(0, 200));
      auto [stopped, after] = daemon.call("POST", cycle % 2 ? path + "/shutdown?timeout=0" : path + "/destroy");
      tally.count("stop " + name, stopped, 200, after.dump().substr(0, 300));
      tally.count("state after stop", after.value("state", "") == "stopped" ? 200 : 500, 200, after.dump());
    }
    auto [deleted, gone] = daemon.call("DELETE", path);
    tally.count("delete " + name, deleted, 200, gone.dump().substr(0, 300));
    std::lock_guard lock(tally.mutex);
    ++tally.cycles;
  }
}

// Runs `clients` clients for `duration` and `cycles` VM cycles beside them.
void stress(DaemonProcess& daemon, int clients, std::chrono::seconds duration, int cycles, Tally& tally) {
  std::atomic<bool> stop = false;
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client)
    threads.emplace_back([&, client] { runClient(daemon, client, stop, tally); });
  std::thread cycler([&] { runCycles(daemon, cycles, tally); });
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& thread : threads) thread.join();
  cycler.join();
}

void printTally(const char* phase, Tally& tally) {
  std::string statuses;
  for (const auto& [status, count] : tally.statuses) statuses += fmt::format(" {}x{}", count, status);
  std::printf("%s: %zu requests, %zu VM cycles, statuses:%s\n", phase, tally.requests, tally.cycles, statuses.c_str());
}

TEST(DaemonReliability, FiftyClientsAndAHundredStartStopCyclesLeakNothing) {
  DaemonProcess daemon("stress");
  // Warm-up: the allocator's arenas, httplib's thread pool and SQLite's page cache reach their size.
  Tally warmUp;
  stress(daemon, 50, std::chrono::seconds(10), 5, warmUp);
  printTally("warm-up", warmUp);
  ASSERT_EQ(warmUp.unexpected, 0u) << warmUp.surprises[0];
  ProcessFigures before = settledFigures(daemon.pid());

  Tally load;
  stress(daemon, 50, std::chrono::seconds(60), 100, load);
  printTally("load", load);
  ProcessFigures after = settledFigures(daemon.pid());
  std::printf("daemon before: %s\ndaemon after:  %s\n", before.summary().c_str(), after.summary().c_str());

  EXPECT_EQ(load.unexpected, 0u) << json(load.surprises).dump(1);
  EXPECT_EQ(load.statuses[201], load.statuses[401] + load.cycles) << "every round and cycle defines one VM";
  EXPECT_GE(load.statuses[201], 500u) << "the clients made too little progress to show anything";
  EXPECT_LE(after.fds, before.fds) << "before:\n" << before.openFiles << "after:\n" << after.openFiles;
  EXPECT_LE(after.threads, before.threads);
  EXPECT_EQ(after.zombies, 0u);
  EXPECT_EQ(after.children, 0u) << "a VM process outlived its stop";
  // Bounded: a few MiB of allocator slack, far below what 100 VMs or 10^4 requests would leak.
  EXPECT_LE(after.rssKib, before.rssKib + 8 * 1024);
  EXPECT_EQ(load.cycles, 100u);
  EXPECT_EQ(directoryEntries(daemon.dataDir() + "/vms"), std::vector<std::string>{}) << "a deleted VM left its directory";
  EXPECT_EQ(daemon.call("GET", "/vms").second, json::array());
}

// The `strata run` processes serving a VM of this data directory (by their
// --api-socket DIR/vms/NAME/api.sock), zombies left out: name -> pid.
std::map<std::string, pid_t> vmProcesses(const std::string& dataDir) {
  std::map<std::string, pid_t> found;
  std::string prefix = dataDir + "/vms/", suffix = "/api.sock";
  for (const auto& entry : directoryEntries("/proc")) {
    if (entry.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = readProcFile("/proc/" + entry + "/cmdline");
    std::vector<std::string> args;
    for (size_t start = 0, end; (end = cmdline.find('\0', start)) != std::string::npos; start = end + 1)
      args.push_back(cmdline.substr(start, end - start));
    auto state = parentAndState(entry);
    if (!state || state->second == 'Z') continue;
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      const std::string& socket = args[i + 1];
      if (args[i] == "--api-socket" && socket.rfind(prefix, 0) == 0 && socket.size() > prefix.size() + suffix.size() &&
          socket.compare(socket.size() - suffix.size(), suffix.size(), suffix) == 0)
        found[socket.substr(prefix.size(), socket.size() - prefix.size() - suffix.size())] = std::stoi(entry);
    }
  }
  return found;
}

// After a restart: every VM the API shows is whole (a settled state; a clone's
// disk readable), the running ones are exactly the live `strata run`
// processes, and no directory or template file is left without its record.
void expectConsistent(DaemonProcess& daemon, const std::string& round) {
  SCOPED_TRACE(round);
  auto [listed, vms] = daemon.call("GET", "/vms");
  ASSERT_EQ(listed, 200) << vms;
  std::map<std::string, pid_t> running;
  std::set<std::string> names;
  for (const auto& vm : vms) {
    std::string name = vm["name"], state = vm["state"];
    names.insert(name);
    EXPECT_TRUE(state == "stopped" || state == "running" || state == "paused") << name << " is " << state;
    if (state != "stopped") running[name] = vm.value("pid", 0);
    if (!vm["template"].get<std::string>().empty()) {
      std::string disk = vm["disks"][0]["path"];
      auto check = runShell(strataBinary() + " image check " + disk + " 2>&1");
      EXPECT_EQ(check.exitCode, 0) << name << "'s linked clone: " << check.output;
    }
  }
  EXPECT_EQ(vmProcesses(daemon.dataDir()), running) << "the VM processes and the recorded running VMs differ";
  for (const auto& dir : directoryEntries(daemon.dataDir() + "/vms"))
    EXPECT_TRUE(names.count(dir)) << "vms/" << dir << " belongs to no VM";
  EXPECT_EQ(directoryEntries(daemon.dataDir() + "/templates"), std::vector<std::string>{"base.qcow2"});
}

// The seed of the kill test: STRATA_KILL_SEED to replay a failure, else the clock.
unsigned killSeed() {
  const char* given = std::getenv("STRATA_KILL_SEED");
  return given ? static_cast<unsigned>(std::strtoul(given, nullptr, 10))
               : static_cast<unsigned>(std::chrono::system_clock::now().time_since_epoch().count());
}

TEST(DaemonReliability, AKill9DuringCreateStartAndDeleteLeavesNothingHalfMade) {
  unsigned seed = killSeed();
  std::printf("seed %u (STRATA_KILL_SEED=%u replays it)\n", seed, seed);
  std::mt19937 random(seed);
  DaemonProcess daemon("kill9");
  struct KillLeftovers {  // VM processes no daemon knows of, should this test find any
    const std::string& dataDir;
    ~KillLeftovers() {
      for (const auto& [name, pid] : vmProcesses(dataDir)) ::kill(pid, SIGKILL);
    }
  } killLeftovers{daemon.dataDir()};
  std::string image = daemon.dataDir() + "/base.raw";
  ASSERT_EQ(runShell("head -c 1048576 /dev/urandom > " + image).exitCode, 0);
  auto [importing, operation] = daemon.call("POST", "/templates", {{"name", "base"}, {"path", image}});
  ASSERT_EQ(importing, 202) << operation;
  ASSERT_TRUE(waitFor([&] { return daemon.call("GET", "/templates/base").second["state"] == "ready"; },
                      std::chrono::seconds(30)));
  for (int round = 0; round < 20; ++round) {
    auto vms = daemon.call("GET", "/vms").second;
    std::vector<std::string> stopped, live, clones;
    for (const auto& vm : vms) {
      std::string name = vm["name"];
      (vm["state"] == "stopped" ? stopped : live).push_back(name);
      if (vm["state"] == "stopped" && vm["template"] == "base") clones.push_back(name);
    }
    std::shuffle(stopped.begin(), stopped.end(), random);
    // Linked clones made and deleted one after another; VMs started (at most
    // three run at a time) and destroyed; all cut short by the kill.
    std::vector<std::thread> clients;
    clients.emplace_back([&daemon, round, clones] {
      for (int i = 0; i < 6; ++i) {
        daemon.call("POST", "/vms", {{"name", fmt::format("r{}c{}", round, i)}, {"template", "base"}});
        if (static_cast<size_t>(i) < clones.size()) daemon.call("DELETE", "/vms/" + clones[i]);
      }
    });
    std::string toStart = stopped.empty() || live.size() >= 3 ? "" : stopped[0];
    clients.emplace_back([&daemon, round, toStart] {
      daemon.call("POST", "/vms", {{"name", fmt::format("r{}p", round)}, {"memory_mib", 128}});
      if (!toStart.empty()) daemon.call("POST", "/vms/" + toStart + "/start");
    });
    if (!live.empty())
      clients.emplace_back([&daemon, name = live[random() % live.size()]] { daemon.call("POST", "/vms/" + name + "/destroy"); });
    auto delay = std::chrono::milliseconds(random() % 250);
    std::this_thread::sleep_for(delay);
    daemon.stop(SIGKILL);
    for (auto& client : clients) client.join();
    std::printf("round %d: killed after %lld ms (starting %s)\n", round, static_cast<long long>(delay.count()),
                toStart.empty() ? "none" : toStart.c_str());
    daemon.start();
    expectConsistent(daemon, fmt::format("round {} (seed {})", round, seed));
    if (HasFailure()) break;
  }
  // What the restarts found to repair, from the daemon's log.
  std::string log = readFile(daemon.dataDir() + ".log");
  auto times = [&](const std::string& text) {
    size_t count = 0;
    for (size_t at = 0; (at = log.find(text, at)) != std::string::npos; at += text.size()) ++count;
    return count;
  };
  std::printf("recovered: %zu VMs adopted, %zu recorded stopped, %zu unrecorded VM processes killed, %zu half-made "
              "definitions dropped, %zu directories removed\n",
              times("adopted running VM"), times("no longer running"), times("which no record owns"),
              times("left half done"), times("which no VM owns"));
}

TEST(DaemonReliability, OperationsOutliveTheDaemonAndOneItDidNotFinishIsFailedWithTheReason) {
  DaemonProcess daemon("ops");
  std::string small = daemon.dataDir() + "/small.raw", large = daemon.dataDir() + "/large.raw";
  ASSERT_EQ(runShell("head -c 1048576 /dev/urandom > " + small + " && head -c 268435456 /dev/urandom > " + large).exitCode,
            0);
  auto [imported, first] = daemon.call("POST", "/templates", {{"name", "small"}, {"path", small}});
  ASSERT_EQ(imported, 202) << first;
  std::string done = first["operation"]["id"];
  ASSERT_TRUE(waitFor([&] { return daemon.call("GET", "/operations/" + done).second["state"] == "succeeded"; },
                      std::chrono::seconds(30)));
  auto [importing, second] = daemon.call("POST", "/templates", {{"name", "large"}, {"path", large}});
  ASSERT_EQ(importing, 202) << second;
  std::string cut = second["operation"]["id"];
  daemon.stop(SIGKILL);  // 256 MiB are far from copied yet
  daemon.start();

  auto [found, finished] = daemon.call("GET", "/operations/" + done);
  ASSERT_EQ(found, 200) << finished;
  EXPECT_EQ(finished["state"], "succeeded");
  EXPECT_EQ(finished["kind"], "import");
  EXPECT_EQ(finished["target"], "small");
  EXPECT_EQ(finished["done"], 1048576);
  auto interrupted = daemon.call("GET", "/operations/" + cut).second;
  EXPECT_EQ(interrupted["state"], "failed") << interrupted;
  EXPECT_EQ(interrupted["error"], "interrupted: the daemon stopped while it ran") << interrupted;
  EXPECT_EQ(daemon.call("GET", "/templates/large").first, 404) << "the interrupted import left its template";
  EXPECT_EQ(directoryEntries(daemon.dataDir() + "/templates"), std::vector<std::string>{"small.qcow2"});

  auto [again, third] = daemon.call("POST", "/templates", {{"name", "large"}, {"path", small}});
  ASSERT_EQ(again, 202) << third;
  EXPECT_NE(third["operation"]["id"], done) << "an id was given out twice";
  EXPECT_NE(third["operation"]["id"], cut) << "an id was given out twice";
  std::string acme = daemon.newTenantToken("acme");
  EXPECT_EQ(daemon.call("GET", "/operations/" + done, nullptr, acme).first, 404) << "another tenant's operation";
  for (const char* id : {"op-", "op-99999", "op-1x", "op-9999999999999999999999", "1"})
    EXPECT_EQ(daemon.call("GET", std::string("/operations/") + id).first, 404) << id;
}

// --operation-retention 2: finished operations are forgotten within a few seconds while the
// daemon runs (and when it starts); one still running never is.
TEST(DaemonReliability, FinishedOperationsArePrunedAfterTheRetentionRunningOnesNever) {
  DaemonProcess daemon("prune", {"--operation-retention", "2"});
  std::string image = daemon.dataDir() + "/small.raw";
  ASSERT_EQ(runShell("head -c 1048576 /dev/zero > " + image).exitCode, 0);
  auto imported = importTemplate(daemon, {{"name", "base"}, {"path", image}});
  ASSERT_EQ(imported["state"], "succeeded") << imported;
  // A template snapshot whose guest sleeps: an operation that runs well past the retention.
  auto [status, started] = daemon.call("POST", "/templates/base/snapshot", {{"commands", "sleep 12"}});
  ASSERT_EQ(status, 202) << started;
  std::string running = started["operation"]["id"], done = imported["id"];
  EXPECT_TRUE(waitFor([&] { return daemon.call("GET", "/operations/" + done).first == 404; }, std::chrono::seconds(20)))
      << "the finished import was not pruned";
  auto [found, operation] = daemon.call("GET", "/operations/" + running);
  ASSERT_EQ(found, 200) << operation;
  EXPECT_EQ(operation["state"], "running") << "the guest's sleep should still run";
  auto taken = finishOperation(daemon, started);
  EXPECT_EQ(taken["state"], "succeeded") << taken;

  // The newest operation stays (ids go on from it), also across a restart.
  auto again = importTemplate(daemon, {{"name", "other"}, {"path", image}});
  ASSERT_EQ(again["state"], "succeeded") << again;
  daemon.stop(SIGKILL);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  daemon.start();
  EXPECT_EQ(daemon.call("GET", "/operations/" + running).first, 404);
  EXPECT_EQ(daemon.call("GET", "/operations/" + again["id"].get<std::string>()).first, 200);
}

}  // namespace
}  // namespace strata::test
