// `strata daemon`: run the management daemon (src/control) for this host.
#include <cstdio>

#include "base/log.h"
#include "commands.h"
#include "control/daemon.h"

namespace strata::cli {

void addDaemonCommand(CLI::App& app, CommandStatus& status) {
  auto options = std::make_shared<control::DaemonOptions>();
  options->webDir = STRATA_SOURCE_DIR "/web";  // the dashboard, from the source tree
  auto meterSeconds = std::make_shared<unsigned>(30), graceSeconds = std::make_shared<unsigned>(30);
  auto retentionSeconds = std::make_shared<unsigned>(7 * 24 * 3600);
  auto* daemon = app.add_subcommand("daemon", "Run the management daemon: VMs, tenants, quotas over a REST API");
  daemon->add_option("--data-dir", options->dataDir, "state directory (SQLite store, admin token, VM files)")
      ->required();
  daemon->add_option("--socket", options->socketPath, "API socket (default: $STRATA_RUN_DIR/daemon.sock, or /run/strata/daemon.sock)");
  daemon->add_option("--listen", options->listen, "also serve the API, consoles (wss://) and dashboard (/ui/) on tcp:ADDR:PORT, over TLS");
  daemon->add_option("--tls-cert", options->tlsCert, "PEM certificate (chain) for --listen");
  daemon->add_option("--tls-key", options->tlsKey, "PEM private key for --listen");
  daemon->add_option("--web-listen", options->webListen,
                     "also serve the API, console and dashboard (/ui/) to browsers on HOST:PORT, plain HTTP");
  daemon->add_option("--web-dir", options->webDir, "the dashboard's files")->capture_default_str();
  daemon->add_option("--meter-interval", *meterSeconds, "seconds between usage records")->capture_default_str();
  daemon->add_option("--shutdown-timeout", *graceSeconds, "seconds a VM gets to shut down before it is killed")
      ->capture_default_str();
  daemon->add_option("--operation-retention", *retentionSeconds,
                     "seconds a finished operation stays queryable (GET /operations/ID); running ones always do")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  daemon->callback([options, meterSeconds, graceSeconds, retentionSeconds, &status] {
    options->strataBinary = "/proc/self/exe";
    log::setLevel(log::Level::Info);  // an operator's record of VMs started, ended and adopted
    options->meterInterval = std::chrono::seconds(std::max(1u, *meterSeconds));
    options->shutdownGrace = std::chrono::seconds(*graceSeconds);
    options->operationRetention = std::chrono::seconds(*retentionSeconds);
    if (auto ran = control::runDaemon(*options); !ran) {
      std::fprintf(stderr, "strata daemon: %s\n", ran.error().message.c_str());
      status.exitCode = 1;
    }
  });
}

}  // namespace strata::cli
