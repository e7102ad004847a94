// `strata daemon`: the management plane's entry point. Opens (or creates) the
// data directory with its SQLite store and admin token, adopts the VMs a
// previous daemon left running, and serves the REST API until SIGTERM/SIGINT.
#pragma once

#include <chrono>
#include <string>

#include "base/result.h"

namespace strata::control {

struct DaemonOptions {
  std::string dataDir;
  std::string socketPath;     // default: defaultDaemonSocket(), where the CLI looks
  std::string strataBinary;   // what runs each VM (`strata run`)
  std::string webListen;      // HOST:PORT for browsers (plain HTTP: loopback, or behind a TLS proxy), or empty
  std::string webDir;         // the dashboard's files, served under /ui/
  std::chrono::seconds meterInterval{30};
  std::chrono::seconds shutdownGrace{30};
  std::chrono::seconds operationRetention{7 * 24 * 3600};  // finished operations older than this are forgotten
  std::string listen;           // "tcp:ADDR:PORT": also serve API, consoles and dashboard there, over TLS
  std::string tlsCert, tlsKey;  // PEM files
};

// The daemon socket clients use when none is given: $STRATA_RUN_DIR/daemon.sock, or /run/strata/daemon.sock.
std::string defaultDaemonSocket();

Result<void> runDaemon(const DaemonOptions& options);

}  // namespace strata::control
