#include "control/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "base/log.h"
#include "base/unique_fd.h"
#include "control/api_server.h"
#include "control/recovery.h"
#include "control/store.h"
#include "control/supervisor.h"
#include "control/template_snapshot.h"
#include "control/token.h"
#include "control/web_front.h"

namespace strata::control {
namespace {

// At first start (no DATADIR/admin.token yet) makes an admin token, stores its
// hash and writes it to that file, readable by the daemon's user only.
Result<void> ensureAdminToken(Store& store, const std::string& dataDir) {
  std::string path = dataDir + "/admin.token";
  if (::access(path.c_str(), F_OK) == 0) return {};
  auto token = newToken();
  if (!token) return token.error();
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file.valid()) return errnoError(path);
  std::string line = *token + "\n";
  if (::write(file.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) return errnoError(path);
  if (auto added = store.addToken(tokenHash(*token), std::nullopt); !added.ok()) return Error{added.message};
  log::info("admin token written to {}", path);
  return {};
}

Result<void> makeDirectory(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) return Error{fmt::format("{}: {}", path, error.message())};
  ::chmod(path.c_str(), 0700);
  return {};
}

// "tcp:ADDR:PORT" -> (ADDR, PORT).
Result<std::pair<std::string, int>> tcpAddress(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (listen.rfind("tcp:", 0) != 0 || colon <= 4) return Error{fmt::format("--listen {}: expected tcp:ADDR:PORT", listen)};
  std::string port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535)
    return Error{fmt::format("--listen {}: the port must be a number from 0 to 65535", listen)};
  return std::pair{listen.substr(4, colon - 4), std::stoi(port)};
}

// Finished operations created more than `retention` ago; at startup and then every
// retention (at most hourly) while the daemon runs.
void pruneOperations(Store& store, std::chrono::seconds retention) {
  int64_t pruned = store.pruneOperations(static_cast<int64_t>(::time(nullptr)) - retention.count());
  if (pruned > 0) log::info("forgot {} finished operations older than {} s", pruned, retention.count());
}

}  // namespace

http_module::Entry<MakeApiService> makeApiService{"makeApiService"};

std::string defaultDaemonSocket() {
  const char* runDir = std::getenv("STRATA_RUN_DIR");
  return std::string(runDir && *runDir ? runDir : "/run/strata") + "/daemon.sock";
}

Result<void> runDaemon(const DaemonOptions& options) {
  if (!options.listen.empty() && (options.tlsCert.empty() || options.tlsKey.empty()))
    return Error{"--listen needs --tls-cert and --tls-key: tokens do not cross a network in the clear"};
  ::umask(0077);  // the store, the token file and the VMs' files are the daemon user's alone
  std::string dataDir = std::filesystem::absolute(options.dataDir).lexically_normal().string();
  // Each VM's sockets are DATADIR/vms/NAME/api.sock and tty.sock, NAME up to 63 characters.
  if (dataDir.size() + 5 + 63 + 9 >= sizeof(sockaddr_un::sun_path))
    return Error{fmt::format("--data-dir {}: too long for the VMs' socket paths (at most {} characters)", dataDir,
                             sizeof(sockaddr_un::sun_path) - 5 - 63 - 9 - 1)};
  for (const auto& dir : {dataDir, dataDir + "/vms", dataDir + "/tenants", dataDir + "/templates",
                          StorageApi::registryDir(dataDir), NetworkApi::runDir(dataDir)})
    if (auto made = makeDirectory(dir); !made) return made.error();
  // One daemon per data directory: a second would adopt the same VMs and take over the socket.
  std::string lockPath = dataDir + "/daemon.lock";
  UniqueFd lock(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid()) return errnoError(lockPath);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
    return Error{fmt::format("{}: another strata daemon is using this data directory", dataDir)};
  std::string socketPath = options.socketPath.empty() ? defaultDaemonSocket() : options.socketPath;
  if (auto made = makeDirectory(std::filesystem::path(socketPath).parent_path().string()); !made) return made.error();
  // The daemon's pools are its own: the VMs it starts (which inherit this) and the daemon find
  // them in DATADIR, never those a `strata pool` outside it registered.
  ::setenv("STRATA_POOL_DIR", StorageApi::registryDir(dataDir).c_str(), 1);

  auto store = Store::open(dataDir + "/strata.db");
  if (!store) return store.error();
  try {
    (*store)->addTenant("default");  // where an admin's VMs go when the spec names no tenant
    if (auto admin = ensureAdminToken(**store, dataDir); !admin) return admin.error();
    for (const auto& path : (*store)->dropUnreadyTemplates()) {  // imports a killed daemon left half done
      log::info("dropping the unfinished template import {}", path);
      ::unlink(path.c_str());
    }
    dropStaleTemplateSnapshots(dataDir, resumedByAnyVm(**store));
  } catch (const StoreFailure& failure) {
    return Error{failure.what()};
  }

  // Signals are taken by one thread with sigwait; every other thread (and so
  // httplib's) starts with them blocked. Spawned VMs get the default mask back.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto makeServer = makeApiService.get();
  if (!makeServer) return makeServer.error();
  Supervisor supervisor(**store, {dataDir, options.strataBinary, options.meterInterval});
  std::unique_ptr<ApiService> apiService = (*makeServer)(**store, supervisor, {dataDir, options.shutdownGrace});
  ApiService& server = *apiService;
  try {
    supervisor.adoptRunningVms();
    recoverInterruptedWork(**store, dataDir);
    server.recoverResources();
    pruneOperations(**store, options.operationRetention);
  } catch (const StoreFailure& failure) {
    return Error{failure.what()};
  }
  // The REST server listens privately; WebFront takes the public sockets and
  // passes it every request but a console WebSocket.
  std::string apiSocket = dataDir + "/api-server.sock";
  if (auto listening = server.listen(apiSocket); !listening) return listening.error();
  if (!options.webDir.empty()) server.mountStatic("/ui", options.webDir);
  server.mountStatic("/ui/xterm", "/usr/share/nodejs/xterm");
  WebFront front(**store, supervisor, apiSocket);
  if (auto listening = front.listenUnix(socketPath); !listening) return listening.error();
  if (!options.webListen.empty())
    if (auto listening = front.listenTcp(options.webListen); !listening) return listening.error();
  if (!options.listen.empty()) {  // TLS: the API, the console WebSocket (wss://) and the dashboard
    auto address = tcpAddress(options.listen);
    if (!address) return address.error();
    std::string hostAndPort = fmt::format("{}:{}", address->first, address->second);
    if (auto tls = front.listenTls(hostAndPort, options.tlsCert, options.tlsKey); !tls) return tls.error();
    log::info("strata daemon: API, consoles and dashboard also on https://{}/ui/", hostAndPort);
  }
  supervisor.startWatching();
  log::info("strata daemon: data in {}, API on {}{}", dataDir, socketPath,
            options.webListen.empty() ? "" : ", dashboard on http://" + options.webListen + "/ui/");
  std::thread apiThread([&] { server.run(); });

  std::atomic<bool> signalled = false;
  std::thread signalWaiter([&] {
    const timespec pruneEvery{std::clamp<time_t>(options.operationRetention.count(), 1, 3600), 0};
    int signal;
    while ((signal = sigtimedwait(&stopSignals, nullptr, &pruneEvery)) < 0) {
      if (errno != EAGAIN) continue;
      try {
        pruneOperations(**store, options.operationRetention);
      } catch (const StoreFailure& failure) {
        log::error("pruning operations: {}", failure.what());
      }
    }
    signalled = true;
    log::info("strata daemon: stopping on signal {} (VMs keep running)", signal);
    front.stop();
  });
  front.run();
  if (!signalled) ::kill(::getpid(), SIGTERM);  // the front ended on its own: release the waiter
  signalWaiter.join();
  front.stop();  // ends the connections (and so their threads) before the store goes
  server.stop();
  apiThread.join();
  ::unlink(socketPath.c_str());
  ::unlink(apiSocket.c_str());
  return {};
}

}  // namespace strata::control
