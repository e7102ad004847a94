// `strata template import|snapshot|list|info|delete`: the daemon's templates,
// disk images VMs are made from as linked clones (`strata vm create --template`);
// a template's snapshot makes them resume instead of boot. An import and a
// snapshot are long operations: the command follows them until they end.

#include <cstdio>
#include <filesystem>

#include <fmt/core.h>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {
namespace {

using nlohmann::json;

struct TemplateArgs : DaemonConnection {
  std::string name, file, format, tenant;
  bool noWait = false;
  bool replace = false;  // snapshot: replace the template's snapshot
  // snapshot: how the template boots, and what to run in it first
  std::string kernel, initrd, append, commands;
  unsigned cpus = 0;
  uint64_t memoryMib = 0;
};

void printTemplates(const json& templates) {
  std::printf("%-24s %-16s %-9s %10s %s\n", "NAME", "TENANT", "STATE", "SIZE", "SNAPSHOT");
  for (const auto& entry : templates)
    std::printf("%-24s %-16s %-9s %9.1fG %s\n", cell(entry["name"]).c_str(),
                entry["tenant"].is_null() ? "(shared)" : cell(entry["tenant"]).c_str(), cell(entry["state"]).c_str(),
                entry.value("virtual_size", 0.0) / double(1 << 30), entry.value("snapshot", false) ? "yes" : "no");
}

void printTemplate(const json& entry) { printTemplates(json::array({entry})); }

// Starts the operation, then prints its id (--no-wait) or follows it and shows the template.
int runOperation(const TemplateArgs& args, const std::string& what, const std::string& path, const json& body) {
  auto started = daemonRequest(args, what, {"POST", path, body.dump()});
  if (!started) return 1;
  if (args.noWait) return daemonCall(args, what, {"GET", "/operations/" + cell((*started)["operation"]["id"])},
                                     [](const json& operation) { std::printf("%s\n", cell(operation["id"]).c_str()); });
  return finishOperation(args, what, *started, {"GET", "/templates/" + args.name}, printTemplate);
}

int importTemplate(const TemplateArgs& args) {
  json body{{"name", args.name}, {"path", std::filesystem::absolute(args.file).lexically_normal().string()}};
  if (!args.format.empty()) body["format"] = args.format;
  if (!args.tenant.empty()) body["tenant"] = args.tenant;
  return runOperation(args, "template import " + args.name, "/templates", body);
}

int snapshotTemplate(const TemplateArgs& args) {
  json body = json::object();
  auto absolute = [](const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); };
  if (!args.kernel.empty()) body["kernel"] = absolute(args.kernel);
  if (!args.initrd.empty()) body["initrd"] = absolute(args.initrd);
  if (!args.append.empty()) body["append"] = args.append;
  if (!args.commands.empty()) body["commands"] = args.commands;
  if (args.cpus > 0) body["cpus"] = args.cpus;
  if (args.memoryMib > 0) body["memory_mib"] = args.memoryMib;
  if (args.replace) body["replace"] = true;
  return runOperation(args, "template snapshot " + args.name, "/templates/" + args.name + "/snapshot", body);
}

}  // namespace

void addTemplateCommands(CLI::App& app, CommandStatus& status) {
  auto* group = app.add_subcommand("template", "images VMs are made from as linked clones (through strata daemon)");
  group->require_subcommand(1);

  auto import = std::make_shared<TemplateArgs>();
  auto* importCommand = group->add_subcommand("import", "copy a raw or qcow2 image into the daemon as a template");
  addConnectionAndOutputOptions(*importCommand, *import);
  importCommand->add_option("name", import->name, "template name")->required();
  importCommand->add_option("file", import->file, "raw or qcow2 image (a tenant's: under its directory)")->required();
  importCommand->add_option("--format", import->format, "raw or qcow2 (default: probed)");
  importCommand->add_option("--tenant", import->tenant, "owner (admin only; default: shared with every tenant)");
  importCommand->add_flag("--no-wait", import->noWait, "print the operation id instead of following it");
  importCommand->callback([import, &status] { status.exitCode = importTemplate(*import); });

  auto snapshot = std::make_shared<TemplateArgs>();
  auto* snapshotCommand = group->add_subcommand(
      "snapshot", "boot the template once, run --commands on its console and keep a snapshot: VMs made from it "
                  "then resume instead of booting");
  addConnectionAndOutputOptions(*snapshotCommand, *snapshot);
  snapshotCommand->add_option("name", snapshot->name, "template name")->required();
  snapshotCommand->add_option("--kernel", snapshot->kernel, "kernel to boot (default: the default guest)");
  snapshotCommand->add_option("--initrd", snapshot->initrd, "initramfs");
  snapshotCommand->add_option("--append", snapshot->append, "kernel command line");
  snapshotCommand->add_option("--cpus", snapshot->cpus, "vCPUs of the snapshot (and of the VMs resumed from it)");
  snapshotCommand->add_option("--memory", snapshot->memoryMib, "MiB of memory of the snapshot");
  snapshotCommand->add_option("--commands", snapshot->commands, "shell commands typed once the guest answers");
  snapshotCommand->add_flag("--replace", snapshot->replace,
                            "replace the template's snapshot (refused while a VM resumes the old one)");
  snapshotCommand->add_flag("--no-wait", snapshot->noWait, "print the operation id instead of following it");
  snapshotCommand->callback([snapshot, &status] { status.exitCode = snapshotTemplate(*snapshot); });

  auto list = std::make_shared<TemplateArgs>();
  auto* listCommand = group->add_subcommand("list", "list the templates you may use");
  addConnectionAndOutputOptions(*listCommand, *list);
  listCommand->callback([list, &status] {
    status.exitCode = daemonCall(*list, "template list", {"GET", "/templates"}, printTemplates);
  });

  for (auto [name, method, help] : {std::tuple{"info", "GET", "show one template"},
                                    std::tuple{"delete", "DELETE", "delete a template no VM is cloned from"}}) {
    auto args = std::make_shared<TemplateArgs>();
    auto* command = group->add_subcommand(name, help);
    addConnectionAndOutputOptions(*command, *args);
    command->add_option("name", args->name, "template name")->required();
    std::string verb = name, httpMethod = method;
    command->callback([args, verb, httpMethod, &status] {
      status.exitCode = daemonCall(*args, "template " + verb + " " + args->name,
                                   {httpMethod, "/templates/" + args->name},
                                   verb == "info" ? printTemplate : [](const json& reply) {
                                     std::printf("deleted %s\n", cell(reply["deleted"]).c_str());
                                   });
    });
  }
}

}  // namespace strata::cli
