// `strata switch`: run a virtual switch (`strata switch NAME [--tap ...]`) and
// manage a running one over its control socket: `strata switch flow
// add|del|list NAME ...`, `strata switch port list|mirror NAME ...`; with
// `--openflow ptcp:...` it also serves OpenFlow 1.3 controllers.
#include <unistd.h>

#include <cstdio>

#include <fmt/core.h>

#include "base/event_loop.h"
#include "base/log.h"
#include "commands.h"
#include "termination_signals.h"
#include "network/socket_port.h"
#include "network/switch_service.h"

namespace strata::cli {
namespace {

struct SwitchArgs {
  std::string name;
  std::vector<std::string> taps, vxlans;
  std::string openflow;
  size_t macLimit = 8192;
  unsigned agingSeconds = 300;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "strata switch: %s\n", message.c_str());
  return 1;
}

int runSwitch(const SwitchArgs& args) {
  auto loop = EventLoop::create();
  if (!loop) return fail(loop.error().message);
  network::Switch::Options options;
  options.macTableLimit = args.macLimit;
  options.macAgingMs = uint64_t{args.agingSeconds} * 1000;
  auto service = network::SwitchService::start(args.name, **loop, options);
  if (!service) return fail(service.error().message);
  for (const auto& tap : args.taps)
    if (auto added = (*service)->addTap(tap); !added) return fail(added.error().message);
  for (const auto& vxlan : args.vxlans)
    if (auto added = (*service)->addVxlan(vxlan); !added) return fail(added.error().message);
  if (!args.openflow.empty()) {
    auto address = (*service)->listenOpenFlow(args.openflow);
    if (!address) return fail(address.error().message);
    std::printf("switch %s: OpenFlow 1.3 at tcp:%s\n", args.name.c_str(), address->c_str());
  }
  auto signals = terminationSignals();
  if (!signals) return fail(signals.error().message);
  if (auto watched = (*loop)->watch(signals->get(), EPOLLIN, [&](uint32_t) { (*loop)->stop(); }); !watched)
    return fail(watched.error().message);
  auto paths = network::switchPaths(args.name);
  std::printf("switch %s: ports at %s, control at %s\n", args.name.c_str(), paths->ports.c_str(),
              paths->control.c_str());
  std::fflush(stdout);
  (*loop)->run();
  (*loop)->unwatch(signals->get());
  return 0;
}

// Sends one control request and prints its reply.
int request(const std::string& name, const std::string& text) {
  auto reply = network::sendSwitchRequest(name, text);
  if (!reply) return fail(reply.error().message);
  std::fputs(reply->c_str(), stdout);
  return 0;
}

}  // namespace

void addSwitchCommands(CLI::App& app, CommandStatus& status) {
  auto* sw = app.add_subcommand("switch", "Run a virtual switch, or manage a running one (flow, port)");
  auto args = std::make_shared<SwitchArgs>();
  sw->add_option("name", args->name, "switch name (VMs attach with `strata run --net switch=NAME`)");
  // One value per --tap/--vxlan, so a switch name after them stays the positional.
  sw->add_option("--tap", args->taps, "TAP port NAME[,vlan=N|,trunk=N,M,A-B[,native=N]]; repeatable")
      ->allow_extra_args(false);
  sw->add_option("--vxlan", args->vxlans,
                 "VXLAN port NAME,remote=IP[:PORT],vni=N[,local=IP[:PORT]][,vlan=N|,trunk=...] (UDP 4789 by "
                 "default); repeatable")
      ->allow_extra_args(false);
  sw->add_option("--openflow", args->openflow,
                 "serve OpenFlow 1.3 controllers: ptcp:PORT[:IP] or ptcp:IP:PORT (IP defaults to 127.0.0.1, "
                 "PORT 0 picks one), e.g. for `ovs-ofctl -O OpenFlow13 dump-flows tcp:127.0.0.1:6653`");
  sw->add_option("--mac-limit", args->macLimit, "MAC table size limit")->capture_default_str();
  sw->add_option("--aging", args->agingSeconds, "MAC aging time in seconds")->capture_default_str();
  sw->require_subcommand(0, 1);
  sw->footer("Sockets live in $STRATA_RUN_DIR (default /run/strata). SIGINT/SIGTERM stop the switch.");
  sw->callback([sw, args, &status] {
    if (!sw->get_subcommands().empty()) return;
    if (args->name.empty()) {
      status.exitCode = fail("give a switch NAME to run, or a subcommand (flow, port)");
      return;
    }
    status.exitCode = runSwitch(*args);
  });

  struct Target {
    std::string name, argument;
    bool json = false;
  };
  auto target = std::make_shared<Target>();
  auto addRequest = [&status, target](CLI::App* parent, const std::string& verb, const std::string& help,
                                      const std::string& argumentHelp, std::string wire, bool hasJson) {
    auto* command = parent->add_subcommand(verb, help);
    command->add_option("name", target->name, "switch name")->required();
    if (!argumentHelp.empty()) command->add_option("argument", target->argument, argumentHelp)->required();
    if (hasJson) command->add_flag("--json", target->json, "JSON output for scripts");
    command->callback([&status, target, wire] {
      std::string text = wire;
      if (!target->argument.empty()) text += " " + target->argument;
      if (target->json) text += " json";
      status.exitCode = request(target->name, text);
    });
  };
  auto* flow = sw->add_subcommand("flow", "Flow rules of a running switch");
  flow->require_subcommand(1);
  addRequest(flow, "add", "Add a rule, e.g. 'priority=100,in_port=vm-42,icmp,actions=drop'; prints its id",
             "rule (ovs-ofctl-like: fields, then actions=...)", "flow-add", false);
  addRequest(flow, "del", "Delete a rule by id (or 'all')", "flow id, or all", "flow-del", false);
  addRequest(flow, "list", "List rules with their packet and byte counters", "", "flow-list", true);
  auto* port = sw->add_subcommand("port", "Ports of a running switch");
  port->require_subcommand(1);
  addRequest(port, "list", "List ports with VLANs and counters, and the switch's drop counters", "", "port-list",
             true);
  auto* mirror = port->add_subcommand("mirror", "SPAN: copy a port's traffic to another port (or 'off')");
  auto mirrorArgs = std::make_shared<std::vector<std::string>>();
  mirror->add_option("name", target->name, "switch name")->required();
  mirror->add_option("ports", *mirrorArgs, "SOURCE DESTINATION|off")->required()->expected(2);
  mirror->callback([&status, target, mirrorArgs] {
    status.exitCode = request(target->name, fmt::format("mirror {} {}", (*mirrorArgs)[0], (*mirrorArgs)[1]));
  });
}

}  // namespace strata::cli
