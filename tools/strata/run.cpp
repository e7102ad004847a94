// `strata run`: boot a virtual machine (the default guest when no kernel is given).
#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/core.h>

#include "commands.h"
#include "cpu/jit/engine_trace.h"
#include "vmm/clone_server.h"
#include "vmm/gdb_stub.h"
#include "vmm/jailer.h"
#include "vmm/snapshot_config.h"
#include "network/socket_port.h"
#include "virtio/net.h"
#include "vmm/vm.h"
#include "vmm/warm_board.h"

namespace strata::cli {
namespace {

struct RunOptions {
  std::string firmware, bare, kernel, initrd, append, mem = "256M", console = "stdio", engine = "jit";
  std::string consoleSocket;
  bool stats = false;
  std::string balloon;  // empty: no balloon device
  std::string balloonAuto;
  bool memMerge = false;
  std::vector<std::string> disks, nets;
  unsigned cpus = 1;
  bool seccomp = true, landlock = true;
  std::string jailDir;
  unsigned uid = 0, gid = 0;
  std::string apiSocket;
  std::string restoreDir;
  bool clone = false;
  std::string cloneDir;
  std::string cloneServer;
  std::vector<std::string> givenBoardOptions;  // those of kBoardOptions on the command line
  std::string incoming;
  std::string incomingTlsCerts;
  std::string gdb;
  bool gdbWait = false;
  std::string engineTrace;
};

// What shapes the guest's machine: with --restore it comes from the snapshot.
constexpr const char* kBoardOptions[] = {"--kernel", "--firmware", "--bare", "--initrd", "--append", "--disk", "--mem",
                                         "--balloon", "--mem-merge", "--cpus", "--net", "--engine"};

// The default guest that guest/build.sh produces.
std::string defaultGuestDir() {
  if (const char* dir = std::getenv("STRATA_GUEST_DIR")) return dir;
  return STRATA_SOURCE_DIR "/out/guest";
}

// "switch=NAME" then, in any order, "mac=..", and the port's VLANs ("vlan=N" or "trunk=N,M,..[,native=N]").
Result<vmm::SwitchNetConfig> parseSwitchNet(const std::string& text) {
  vmm::SwitchNetConfig net;
  std::string vlans;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string token = text.substr(start, comma - start);
    start = comma + 1;
    if (token.rfind("switch=", 0) == 0) {
      net.switchName = token.substr(7);
    } else if (token.rfind("mac=", 0) == 0) {
      auto mac = virtio::net::parseMacAddress(token.substr(4));
      if (!mac) return mac.error();
      net.mac = *mac;
    } else {
      vlans += (vlans.empty() ? "" : ",") + token;
    }
  }
  if (auto paths = network::switchPaths(net.switchName); !paths) return paths.error();
  auto parsed = network::PortVlans::parse(vlans);
  if (!parsed) return parsed.error();
  net.vlans = *parsed;
  return net;
}

// A boot file named from the root: the VM opens it again after it started (a reset loads the
// kernel anew) and a snapshot records it for its restores, which may run in another directory.
std::string absoluteFile(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  std::error_code error;
  auto absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

Result<vmm::VmConfig> makeConfig(const RunOptions& options) {
  vmm::VmConfig config;
  config.firmware = absoluteFile(options.firmware);
  config.bareProgram = absoluteFile(options.bare);
  config.kernel = absoluteFile(options.kernel);
  config.initrd = absoluteFile(options.initrd);
  if (!config.bareProgram.empty() && (!config.kernel.empty() || !config.firmware.empty() || !config.initrd.empty()))
    return Error{"--bare runs a program on its own: no --kernel, --initrd or --firmware with it"};
  if (config.kernel.empty() && config.bareProgram.empty() && options.restoreDir.empty()) {
    std::string dir = defaultGuestDir();
    config.kernel = dir + "/Image";
    struct stat st;
    if (::stat(config.kernel.c_str(), &st) != 0)
      return Error{fmt::format("{}: default guest not built (run guest/build.sh, or pass --kernel)", config.kernel)};
    if (config.initrd.empty()) config.initrd = dir + "/initramfs.cpio.gz";
  }
  config.commandLine = options.append.empty() ? "console=ttyS0" : options.append;
  config.cpus = options.cpus;
  auto engine = cpu::parseEngineConfig(options.engine);
  if (!engine) return Error{fmt::format("--engine {}: expected interp, jit or jit,threshold=N", options.engine)};
  config.engine = *engine;
  config.printEngineStats = options.stats;
  if (!options.engineTrace.empty()) {
    if (config.engine.kind != cpu::EngineKind::Jit) return Error{"--engine-trace traces the translator: it needs --engine jit"};
    auto trace = cpu::EngineTrace::open(options.engineTrace);  // before the sandbox: opens a file
    if (!trace) return trace.error();
    config.engine.trace = *trace;
  }
  auto memory = vmm::parseMemorySize(options.mem);
  if (!memory) return memory.error();
  config.memoryBytes = *memory;
  if (!options.balloon.empty()) {
    auto target = vmm::parseByteSize(options.balloon, "--balloon");
    if (!target) return target.error();
    if (*target > config.memoryBytes)
      return Error{fmt::format("--balloon {}: more than the guest's {} MiB of memory", options.balloon,
                               config.memoryBytes >> 20)};
    config.balloonTargetBytes = *target;
  }
  if (!options.balloonAuto.empty()) {
    auto policy = vmm::parseBalloonAuto(options.balloonAuto, config.memoryBytes, config.balloonTargetBytes.value_or(0));
    if (!policy) return policy.error();
    config.balloonAuto = *policy;
    if (!config.balloonTargetBytes) config.balloonTargetBytes = 0;  // the policy needs the device
  }
  config.memMerge = options.memMerge;
  for (const auto& text : options.disks) {
    auto disk = vmm::parseDiskConfig(text);
    if (!disk) return disk.error();
    config.disks.push_back(*disk);
  }
  for (const auto& text : options.nets) {
    if (text.rfind("tapfd=", 0) == 0) {  // how the jailer hands over the TAP fds it opened
      int fd = -1;
      auto [end, error] = std::from_chars(text.data() + 6, text.data() + text.size(), fd);
      if (error != std::errc() || end != text.data() + text.size() || fd < 0)
        return Error{fmt::format("--net {}: expected tapfd=FD", text)};
      config.tapFds.push_back(fd);
      continue;
    }
    if (text.rfind("switch=", 0) == 0) {
      auto net = parseSwitchNet(text);
      if (!net) return Error{fmt::format("--net {}: {}", text, net.error().message)};
      config.switchNets.push_back(*net);
      continue;
    }
    if (text.rfind("tap=", 0) != 0 || text.size() == 4)
      return Error{fmt::format("--net {}: expected tap=NAME or switch=NAME[,vlan=N|,trunk=N,M,...][,mac=..]", text)};
    config.tapDevices.push_back(text.substr(4));
  }
  auto console = vmm::parseConsoleConfig(options.console);
  if (!console) return console.error();
  config.console = *console;
  config.console.socketPath = options.consoleSocket;
  config.sandbox.seccomp = options.seccomp;
  config.sandbox.landlock = options.landlock;
  config.apiSocket = options.apiSocket;
  config.restoreDir = options.restoreDir;
  if (options.gdbWait && options.gdb.empty()) return Error{"--gdb-wait needs --gdb"};
  if (!options.gdb.empty()) {
    if (auto endpoint = vmm::parseGdbEndpoint(options.gdb); !endpoint) return endpoint.error();
  }
  config.gdb = options.gdb;
  config.gdbWait = options.gdbWait;
  config.clone = options.clone;
  config.cloneDir = options.cloneDir;
  config.incoming = options.incoming;
  config.incomingTlsCerts = options.incomingTlsCerts;
  if (!config.incoming.empty() && !config.restoreDir.empty()) return Error{"--incoming and --restore exclude each other"};
  if (config.restoreDir.empty()) return config;
  auto recorded = vmm::readSnapshotBoard(config.restoreDir);
  if (!recorded) return recorded.error();
  return vmm::restoreConfig(*recorded, config, options.givenBoardOptions);
}

// The options of `strata run`, also what a clone server reads each request with.
void addRunOptions(CLI::App* run, RunOptions* options) {
  run->add_option("--kernel", options->kernel, "Linux Image or ELF kernel");
  run->add_option("--firmware", options->firmware,
                  "M-mode firmware (ELF or flat binary at the RAM base, e.g. OpenSBI fw_jump) that boots the kernel");
  run->add_option("--bare", options->bare,
                  "bare-metal ELF started in M-mode at its link address; ends when it writes HTIF tohost "
                  "(1 = pass, exit 0; (n << 1) | 1 = test n failed, exit n)");
  run->add_option("--initrd", options->initrd, "initramfs");
  run->add_option("--append", options->append, "kernel command line (default: console=ttyS0)");
  run->add_option("--disk", options->disks,
                  "disk image or pool:NAME/VOLUME, PATH[,readonly][,format=raw|qcow2]; repeatable (vda, vdb, ...). "
                  "Without format= an image's format is probed once, and a probed raw image refuses guest "
                  "writes that would make it probe as another format");
  run->add_option("--mem", options->mem, "guest memory, e.g. 256M or 1G")->capture_default_str();
  run->add_option("--balloon", options->balloon,
                  "add a virtio-balloon device (with free page reporting) and ask the guest for this much memory "
                  "back, e.g. 128M (0: reporting only)");
  run->add_option("--balloon-auto", options->balloonAuto,
                  "host-free=SIZE[,max=SIZE][,guest-free=SIZE][,step=SIZE]: inflate the balloon (implies --balloon 0) "
                  "while the host's MemAvailable is below host-free and the guest has more than guest-free available "
                  "(default 1/8 of --mem), up to max (default 3/4); deflate under guest pressure or when the host has "
                  "room again");
  run->add_flag("--mem-merge", options->memMerge,
                "let the host's KSM merge identical guest pages (private anonymous RAM marked MADV_MERGEABLE)");
  run->add_option("--cpus", options->cpus, "number of vCPUs (1-8)")->capture_default_str();
  run->add_option("--net", options->nets,
                  "network interface, tap=NAME, switch=NAME[,vlan=N|,trunk=N,M,...][,mac=..] or tapfd=FD (an "
                  "attached TAP fd); repeatable");
  run->add_option("--console", options->console, "stdio, pty or file=PATH")->capture_default_str();
  run->add_option("--console-socket", options->consoleSocket,
                  "also serve the console on this UNIX socket (one client at a time, the newest wins)");
  run->add_option("--engine", options->engine, "CPU engine: interp or jit[,threshold=N] (N: runs before a block is translated)")->capture_default_str();
  run->add_option("--engine-trace", options->engineTrace,
                  "write each block the translator translates to this file: its guest instructions beside the "
                  "x86-64 code made for them (disassembled)");
  run->add_flag("--stats", options->stats, "print each hart's engine counters when the VM ends");
  run->add_option("--api-socket", options->apiSocket,
                  "serve the VM's control API (HTTP + JSON, see docs/api/) on this UNIX socket; `strata vm` drives it");
  auto* restore = run->add_option("--restore", options->restoreDir,
                  "resume the snapshot in this directory (written by `strata vm snapshot`) instead of booting; "
                  "the board (memory, vCPUs, engine, boot files, disks, NICs, balloon) is the snapshot's, and "
                  "such an option given must match it");
  run->add_flag("--clone", options->clone,
                "with --restore: start one of many VMs from the snapshot: RAM shared copy-on-write, each disk a new "
                "qcow2 overlay on the snapshot's image (DIR/clone-PID-diskN.qcow2) or a thin clone of its thin volume "
                "(VOLUME.clone-PID), new NIC addresses and VM "
                "generation id")
      ->needs(restore);
  run->add_option("--clone-dir", options->cloneDir,
                  "with --clone: make the disk overlays in this directory instead (DIR/clone-diskN.qcow2)")
      ->needs("--clone");
  auto* incoming = run->add_option("--incoming", options->incoming,
                  "wait on tcp:ADDR:PORT for a VM live-migrated from another strata (`strata vm migrate --to`) and run it; "
                  "the board options must match the source's (with `migrate --with-disks`, each --disk is this "
                  "host's own file of the source disk's virtual size, e.g. `strata image create`, which the "
                  "source's disk is copied into; a file that does not exist is made as the source announces its disk)");
  run->add_option("--tls-certs", options->incomingTlsCerts,
                  "with --incoming: require TLS of the source, with DIR/server-cert.pem and DIR/server-key.pem "
                  "(as strata nbd serve --tls-certs)")
      ->needs(incoming);
  run->add_option("--gdb", options->gdb,
                  "serve the GDB remote protocol (gdb-multiarch: target remote HOST:PORT) on tcp:HOST:PORT; "
                  "port 0 picks one (logged)");
  run->add_flag("--gdb-wait", options->gdbWait, "start the guest paused until the debugger continues it");
  auto onOff = CLI::IsMember({"on", "off"});
  run->add_option_function<std::string>(
         "--seccomp", [options](const std::string& value) { options->seccomp = value == "on"; },
         "seccomp allow-list per thread; off only for debugging (default: on)")
      ->check(onOff);
  run->add_option_function<std::string>(
         "--landlock", [options](const std::string& value) { options->landlock = value == "on"; },
         "limit file access to the VM's own files when the host kernel has Landlock (default: on)")
      ->check(onOff);
  auto* jail = run->add_option("--jail", options->jailDir,
                               "run the VM jailed (needs root): new namespaces, DIR as its root holding only its "
                               "files, then exec as --uid/--gid");
  run->add_option("--uid", options->uid, "unprivileged user the jailed VM runs as")->needs(jail);
  run->add_option("--gid", options->gid, "unprivileged group the jailed VM runs as")->needs(jail);
  jail->needs("--uid")->needs("--gid");
  run->add_option("--clone-server", options->cloneServer,
                  "with --restore: restore the snapshot once without running it, translate the code the jit had "
                  "translated when it was taken (its warm set), then serve clones on this UNIX socket, each forked "
                  "from it (sharing its memory copy-on-write); with --restore DIR --clone as well: run this clone "
                  "through that server "
                  "(the options, stdio and working directory go to it; exits with the clone's status)")
      ->needs(restore);
}

void recordGivenBoardOptions(const CLI::App& run, RunOptions& options) {
  for (const char* option : kBoardOptions)
    if (run.count(option) > 0) options.givenBoardOptions.push_back(option);
}

// A VM's end as `strata run` reports it: its exit status, or 1 and a line.
int reportRun(const Result<int>& result) {
  if (result) return result.value();
  std::fprintf(stderr, "strata run: %s\n", result.error().message.c_str());
  return 1;
}

bool sameDirectory(const std::string& a, const std::string& b) {
  struct stat first, second;
  return ::stat(a.c_str(), &first) == 0 && ::stat(b.c_str(), &second) == 0 && first.st_dev == second.st_dev &&
         first.st_ino == second.st_ino;
}

// A clone server's request: `strata run` arguments (after "run") naming this server's snapshot and --clone.
Result<vmm::VmConfig> parseCloneRequest(const std::vector<std::string>& args, const std::string& snapshotDir) {
  CLI::App parser{"strata run (a clone server's request)"};
  RunOptions options;
  addRunOptions(&parser, &options);
  try {
    parser.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them last first
  } catch (const CLI::ParseError& error) {
    return Error{fmt::format("bad options: {}", error.what())};
  }
  recordGivenBoardOptions(parser, options);
  if (!options.clone || options.restoreDir.empty())
    return Error{"a clone server runs `strata run --restore DIR --clone [options]` requests"};
  if (!options.jailDir.empty() || !options.incoming.empty() || !options.engineTrace.empty())
    return Error{"--jail, --incoming and --engine-trace are not for a clone server's clones"};
  if (!sameDirectory(options.restoreDir, snapshotDir))
    return Error{fmt::format("--restore {}: this server clones {}", options.restoreDir, snapshotDir)};
  options.restoreDir = snapshotDir;  // the warm board's name for it (absolute: the clone runs in the client's directory)
  return makeConfig(options);
}

// `strata run --restore DIR --clone-server SOCKET`: builds the warm board, then forks clones until killed.
int serveClones(RunOptions& options) {
  char* absolute = ::realpath(options.restoreDir.c_str(), nullptr);
  if (!absolute) {
    std::fprintf(stderr, "strata run: --restore %s: %s\n", options.restoreDir.c_str(), std::strerror(errno));
    return 2;
  }
  options.restoreDir = absolute;
  std::free(absolute);
  options.clone = true;
  auto config = makeConfig(options);
  if (!config) {
    std::fprintf(stderr, "strata run: %s\n", config.error().message.c_str());
    return 2;
  }
  auto warm = vmm::WarmBoard::create(*config);
  if (!warm) return reportRun(warm.error());
  const std::string snapshotDir = options.restoreDir;
  vmm::CloneServerHooks hooks{
      .parse = [&](const std::vector<std::string>& args) { return parseCloneRequest(args, snapshotDir); },
      .run = [](const vmm::VmConfig& clone, std::unique_ptr<vmm::WarmBoard> board) {
        return reportRun(vmm::runVm(clone, std::move(board)));
      }};
  auto served = vmm::serveClones(options.cloneServer, std::move(*warm), hooks);
  return reportRun(served ? Result<int>(0) : Result<int>(served.error()));
}

}  // namespace

void addRunCommand(CLI::App& app, CommandStatus& status) {
  auto options = std::make_shared<RunOptions>();
  auto* run = app.add_subcommand("run", "Boot a virtual machine (the default guest when no --kernel is given)");
  addRunOptions(run, options.get());
  run->footer("Console escape: Ctrl-A x quits, Ctrl-A h helps. Guest poweroff exits 0; a guest panic exits 1.");
  run->callback([options, run, &status] {
    recordGivenBoardOptions(*run, *options);
    if (!options->cloneServer.empty() && options->clone) {  // a client: the server makes the clone
      status.exitCode = reportRun(vmm::requestClone(
          options->cloneServer, std::vector<std::string>(status.args.begin() + 1, status.args.end())));
      return;
    }
    if (!options->cloneServer.empty()) {
      status.exitCode = serveClones(*options);
      return;
    }
    auto config = makeConfig(*options);
    if (!config) {
      std::fprintf(stderr, "strata run: %s\n", config.error().message.c_str());
      status.exitCode = 2;
      return;
    }
    status.exitCode = reportRun(options->jailDir.empty()
                                    ? vmm::runVm(*config)
                                    : vmm::runJailed(*config, vmm::JailConfig{options->jailDir, options->uid, options->gid}));
  });
}

}  // namespace strata::cli
