// `strata nbd serve`: exports a disk image (raw or qcow2) or a logical volume
// (pool:NAME/VOLUME) over the NBD protocol on a UNIX socket or TCP on loopback,
// optionally over TLS (X.509, optionally verifying client certificates, or
// pre-shared keys), until SIGINT or SIGTERM; then it lets requests in flight
// finish, flushes and closes the disk cleanly.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "base/event_loop.h"
#include "base/log.h"
#include "commands.h"
#include "termination_signals.h"
#include "storage/disk_image.h"
#include "storage/nbd/nbd_server.h"
#include "storage/sync_io.h"
#include "storage/volume/volume_disk.h"

namespace strata::cli {

namespace {

struct ServeArgs {
  std::string image;
  std::string socketPath;
  std::optional<int> port;
  bool readOnly = false;
  std::string name;
  std::string description;
  std::string format;
  std::vector<std::string> pvPaths;
  size_t maxClients = 128;
  double handshakeLimit = 10;  // seconds; 0: none
  bool verbose = false;
  std::string tlsMode;  // empty: require when credentials are given, else off
  std::string tlsCertificates;
  std::string tlsPskFile;
  bool tlsVerifyPeer = false;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "strata nbd: %s\n", message.c_str());
  return 1;
}

// --tls, --tls-certs and --tls-psk as a policy; credentials alone mean TLS is required.
Result<storage::nbd::TlsPolicy> tlsPolicy(const ServeArgs& args) {
  using storage::nbd::TlsMode;
  bool haveCredentials = !args.tlsCertificates.empty() || !args.tlsPskFile.empty();
  TlsMode mode = haveCredentials ? TlsMode::Require : TlsMode::Off;
  if (!args.tlsMode.empty()) {
    auto parsed = storage::nbd::parseTlsMode(args.tlsMode);
    if (!parsed) return Error{"--tls: " + parsed.error().message};
    mode = *parsed;
  }
  if (args.tlsVerifyPeer && args.tlsCertificates.empty()) {
    return Error{"--tls-verify-peer checks client certificates: it needs --tls-certs DIR"};
  }
  if (mode == TlsMode::Off) {
    if (haveCredentials) return Error{"--tls=off leaves --tls-certs/--tls-psk unused; drop one or the other"};
    return storage::nbd::TlsPolicy{};
  }
  if (!haveCredentials) return Error{fmt::format("--tls={} needs --tls-certs DIR or --tls-psk FILE", args.tlsMode)};
  auto credentials = args.tlsCertificates.empty()
                         ? storage::nbd::TlsCredentials::loadPskFile(args.tlsPskFile)
                         : storage::nbd::TlsCredentials::loadX509Directory(args.tlsCertificates, args.tlsVerifyPeer);
  if (!credentials) return credentials.error();
  return storage::nbd::TlsPolicy{mode, std::move(*credentials)};
}

int runServe(const ServeArgs& args) {
  if (args.verbose) log::setLevel(log::Level::Debug);
  if (!args.socketPath.empty() && args.port) return fail("choose either --socket or --port, not both");
  if (args.port && (*args.port < 0 || *args.port > 65535)) return fail(fmt::format("--port {}: out of range", *args.port));
  auto tls = tlsPolicy(args);
  if (!tls) return fail(tls.error().message);

  auto loop = EventLoop::create();
  if (!loop) return fail(loop.error().message);
  storage::DiskOptions options;
  options.readOnly = args.readOnly;
  if (!args.format.empty()) {
    auto format = storage::parseFormatName(args.format);
    if (!format) return fail(format.error().message);
    options.format = *format;
  }
  std::unique_ptr<storage::BlockDevice> device;
  storage::nbd::NbdExport exported;
  if (storage::volume::isVolumeDiskSpec(args.image)) {
    if (!args.format.empty()) return fail("--format applies to image files; a pool volume has no format");
    auto spec = storage::volume::parseVolumeDiskSpec(args.image);
    if (!spec) return fail(spec.error().message);
    auto volume = args.pvPaths.empty() ? storage::volume::openVolumeDisk(args.image, options, **loop)
                                       : storage::volume::openVolume(args.pvPaths, spec->volume, options, **loop);
    if (!volume) return fail(volume.error().message);
    device = std::move(*volume);
  } else {
    if (!args.pvPaths.empty()) return fail("--pv applies to pool:NAME/VOLUME exports only");
    auto image = storage::openDiskImage(args.image, options, **loop);
    if (!image) return fail(image.error().message);
    if (options.format == storage::ImageFormat::Auto) log::warn("{}", storage::probedFormatWarning(**image, "--format "));
    exported.blockStatus = storage::nbd::diskImageBlockStatus(**image);
    device = std::move(*image);
  }
  exported.name = args.name;
  exported.description = args.description.empty() ? args.image : args.description;
  exported.device = device.get();
  exported.readOnly = args.readOnly || device->readOnly();
  storage::nbd::NbdLimits limits;
  limits.maxConnections = args.maxClients;
  // Rounded up, so a tiny positive limit does not become 0 (no limit).
  limits.handshakeLimit = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(args.handshakeLimit * 1000)));
  auto server = std::make_unique<storage::nbd::NbdServer>(**loop, std::vector{exported}, limits);
  bool useTls = tls->mode != storage::nbd::TlsMode::Off;
  if (auto configured = server->setTls(std::move(*tls)); !configured) return fail(configured.error().message);

  auto signals = terminationSignals();
  if (!signals) return fail(signals.error().message);
  int signalFd = signals->get();
  int received = 0;
  auto watched = (*loop)->watch(signalFd, EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info{};
    if (::read(signalFd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) received = static_cast<int>(info.ssi_signo);
    (*loop)->stop();
  });
  if (!watched) return fail(watched.error().message);

  std::string exportQuery = args.name.empty() ? "" : args.name;
  if (!args.socketPath.empty()) {
    if (auto listening = server->listenUnix(args.socketPath); !listening) return fail(listening.error().message);
    std::printf("%s:///%s?socket=%s\n", useTls ? "nbds+unix" : "nbd+unix", exportQuery.c_str(),
                args.socketPath.c_str());
  } else {
    auto port = server->listenTcp(static_cast<uint16_t>(args.port.value_or(10809)));
    if (!port) return fail(port.error().message);
    std::printf("%s://127.0.0.1:%u/%s\n", useTls ? "nbds" : "nbd", static_cast<unsigned>(*port),
                exportQuery.c_str());
  }
  std::fflush(stdout);
  std::fprintf(stderr, "strata nbd: serving %s (%llu bytes%s)%s; stop with Ctrl-C\n", args.image.c_str(),
               static_cast<unsigned long long>(exported.device->sizeBytes()), exported.readOnly ? ", read-only" : "",
               args.name.empty() ? "" : fmt::format(" as '{}'", args.name).c_str());

  (*loop)->run();

  // Disconnect everyone, let the device finish what it was given, then make it durable.
  server->shutdown();
  while (!server->idle()) (*loop)->runOnce(100);
  server.reset();
  (*loop)->unwatch(signalFd);
  int status = 0;
  if (!exported.readOnly) {
    if (auto flushed = storage::flushSync(*device, **loop); !flushed) status = fail(flushed.error().message);
  }
  device.reset();
  std::fprintf(stderr, "strata nbd: stopped (%s)\n", received == SIGINT ? "SIGINT" : "SIGTERM");
  return status;
}

}  // namespace

void addNbdCommands(CLI::App& app, CommandStatus& status) {
  auto* nbd = app.add_subcommand("nbd", "Export disk images over the Network Block Device protocol");
  nbd->require_subcommand(1);
  auto args = std::make_shared<ServeArgs>();
  auto* serve = nbd->add_subcommand(
      "serve", "Serve an image (raw or qcow2) or a volume (pool:NAME/VOLUME) to NBD clients until SIGINT/SIGTERM");
  serve->add_option("disk", args->image, "Image file, or pool:NAME/VOLUME")->required();
  serve->add_option("--pv", args->pvPaths, "PVs of the pool (instead of the pool registry); repeatable");
  auto* socketOption = serve->add_option("--socket", args->socketPath, "Listen on this UNIX socket");
  serve->add_option("--port", args->port, "Listen on TCP 127.0.0.1 and ::1 at this port (default 10809; 0 picks one)")
      ->excludes(socketOption);
  serve->add_flag("--read-only,-r", args->readOnly, "Refuse writes (clients see a read-only export)");
  serve->add_option("--name,-x", args->name, "Export name (the default export \"\" always works too)");
  serve->add_option("--description", args->description, "Export description shown to clients");
  serve->add_option("--format,-f", args->format, "Image format: raw or qcow2 (default: probe, and a probed raw image refuses writes that would "
                    "make it probe as another format); images only");
  serve->add_option("--max-clients", args->maxClients, "Clients served at once; more are refused (default 128)")
      ->check(CLI::PositiveNumber);
  serve->add_option("--handshake-limit", args->handshakeLimit,
                    "Seconds a client may take to finish negotiating, TLS included, before it is "
                    "disconnected (default 10; 0: no limit)")
      ->check(CLI::Range(0.0, 86400.0));
  serve->add_option("--tls", args->tlsMode,
                    "off, on (clients choose) or require (all but STARTTLS refused before TLS); "
                    "default: require with credentials, else off");
  auto* certificatesOption = serve->add_option(
      "--tls-certs", args->tlsCertificates,
      "Directory with server-cert.pem and server-key.pem (clients trust its CA via ca-cert.pem)");
  serve->add_option("--tls-psk", args->tlsPskFile, "Pre-shared keys file, username:hexkey lines (psktool)")
      ->excludes(certificatesOption);
  serve->add_flag("--tls-verify-peer", args->tlsVerifyPeer,
                  "Require a client certificate signed by the CA in --tls-certs DIR/ca-cert.pem");
  serve->add_flag("--verbose,-v", args->verbose, "Log every connection and refused request");
  serve->callback([args, &status] { status.exitCode = runServe(*args); });
}

}  // namespace strata::cli
