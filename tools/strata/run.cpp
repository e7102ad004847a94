// `strata run`: boot a virtual machine (the default guest when no kernel is given).
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/core.h>

#include "commands.h"
#include "vmm/vm.h"

namespace strata::cli {
namespace {

struct RunOptions {
  std::string firmware, bare, kernel, initrd, append, mem = "256M", console = "stdio", engine = "jit";
  bool stats = false;
  std::vector<std::string> disks, nets;
  unsigned cpus = 1;
};

// The default guest that guest/build.sh produces.
std::string defaultGuestDir() {
  if (const char* dir = std::getenv("STRATA_GUEST_DIR")) return dir;
  return STRATA_SOURCE_DIR "/out/guest";
}

Result<vmm::VmConfig> makeConfig(const RunOptions& options) {
  vmm::VmConfig config;
  config.firmware = options.firmware;
  config.bareProgram = options.bare;
  config.kernel = options.kernel;
  config.initrd = options.initrd;
  if (!config.bareProgram.empty() && (!config.kernel.empty() || !config.firmware.empty() || !config.initrd.empty()))
    return Error{"--bare runs a program on its own: no --kernel, --initrd or --firmware with it"};
  if (config.kernel.empty() && config.bareProgram.empty()) {
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
  auto memory = vmm::parseMemorySize(options.mem);
  if (!memory) return memory.error();
  config.memoryBytes = *memory;
  for (const auto& text : options.disks) {
    auto disk = vmm::parseDiskConfig(text);
    if (!disk) return disk.error();
    config.disks.push_back(*disk);
  }
  for (const auto& text : options.nets) {
    if (text.rfind("tap=", 0) != 0 || text.size() == 4)
      return Error{fmt::format("--net {}: expected tap=NAME", text)};
    config.tapDevices.push_back(text.substr(4));
  }
  auto console = vmm::parseConsoleConfig(options.console);
  if (!console) return console.error();
  config.console = *console;
  return config;
}

}  // namespace

void addRunCommand(CLI::App& app, CommandStatus& status) {
  auto options = std::make_shared<RunOptions>();
  auto* run = app.add_subcommand("run", "Boot a virtual machine (the default guest when no --kernel is given)");
  run->add_option("--kernel", options->kernel, "Linux Image or ELF kernel");
  run->add_option("--firmware", options->firmware,
                  "M-mode firmware (ELF or flat binary at the RAM base, e.g. OpenSBI fw_jump) that boots the kernel");
  run->add_option("--bare", options->bare,
                  "bare-metal ELF started in M-mode at its link address; ends when it writes HTIF tohost "
                  "(1 = pass, exit 0; (n << 1) | 1 = test n failed, exit n)");
  run->add_option("--initrd", options->initrd, "initramfs");
  run->add_option("--append", options->append, "kernel command line (default: console=ttyS0)");
  run->add_option("--disk", options->disks, "disk image, PATH[,readonly]; repeatable (vda, vdb, ...)");
  run->add_option("--mem", options->mem, "guest memory, e.g. 256M or 1G")->capture_default_str();
  run->add_option("--cpus", options->cpus, "number of vCPUs (1-8)")->capture_default_str();
  run->add_option("--net", options->nets, "network interface, tap=NAME; repeatable");
  run->add_option("--console", options->console, "stdio, pty or file=PATH")->capture_default_str();
  run->add_option("--engine", options->engine, "CPU engine: interp or jit[,threshold=N] (N: runs before a block is translated)")->capture_default_str();
  run->add_flag("--stats", options->stats, "print each hart's engine counters when the VM ends");
  run->footer("Console escape: Ctrl-A x quits, Ctrl-A h helps. Guest poweroff exits 0; a guest panic exits 1.");
  run->callback([options, &status] {
    auto config = makeConfig(*options);
    if (!config) {
      std::fprintf(stderr, "strata run: %s\n", config.error().message.c_str());
      status.exitCode = 2;
      return;
    }
    auto result = vmm::runVm(*config);
    if (!result) {
      std::fprintf(stderr, "strata run: %s\n", result.error().message.c_str());
      status.exitCode = 1;
      return;
    }
    status.exitCode = *result;
  });
}

}  // namespace strata::cli
