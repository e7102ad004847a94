// `strata template import|list|info|delete`: the daemon's templates, disk
// images VMs are made from as linked clones (`strata vm create --template`).
// An import is a long operation: the command follows it until it ends.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/core.h>

#include "commands.h"
#include "daemon_client.h"

namespace strata::cli {
namespace {

using nlohmann::json;

struct TemplateArgs : DaemonConnection {
  std::string name, file, format, tenant;
  bool noWait = false;
};

void printTemplates(const json& templates) {
  std::printf("%-24s %-16s %-9s %10s\n", "NAME", "TENANT", "STATE", "SIZE");
  for (const auto& entry : templates)
    std::printf("%-24s %-16s %-9s %9.1fG\n", cell(entry["name"]).c_str(),
                entry["tenant"].is_null() ? "(shared)" : cell(entry["tenant"]).c_str(), cell(entry["state"]).c_str(),
                entry.value("virtual_size", 0.0) / double(1 << 30));
}

void printTemplate(const json& entry) { printTemplates(json::array({entry})); }

// Polls the import's operation until it ends; its final state, or nullopt after an error was printed.
std::optional<json> follow(const TemplateArgs& args, const std::string& what, const std::string& id) {
  bool show = ::isatty(STDERR_FILENO) == 1;
  for (;;) {
    auto operation = daemonRequest(args, what, {"GET", "/operations/" + id});
    if (!operation) return std::nullopt;
    if ((*operation)["state"] != "running") {
      if (show) std::fprintf(stderr, "\n");
      return operation;
    }
    if (show && (*operation)["total"].get<uint64_t>() > 0)
      std::fprintf(stderr, "\r%s: %.0f%%", what.c_str(),
                   100.0 * (*operation)["done"].get<double>() / (*operation)["total"].get<double>());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int importTemplate(const TemplateArgs& args) {
  std::string what = "template import " + args.name;
  json body{{"name", args.name}, {"path", std::filesystem::absolute(args.file).lexically_normal().string()}};
  if (!args.format.empty()) body["format"] = args.format;
  if (!args.tenant.empty()) body["tenant"] = args.tenant;
  auto started = daemonRequest(args, what, {"POST", "/templates", body.dump()});
  if (!started) return 1;
  if (args.noWait) return daemonCall(args, what, {"GET", "/operations/" + cell((*started)["operation"]["id"])},
                                     [](const json& operation) { std::printf("%s\n", cell(operation["id"]).c_str()); });
  auto ended = follow(args, what, cell((*started)["operation"]["id"]));
  if (!ended) return 1;
  if ((*ended)["state"] != "succeeded") {
    std::fprintf(stderr, "strata %s: %s\n", what.c_str(), cell(ended->value("error", json("failed"))).c_str());
    return 1;
  }
  return daemonCall(args, what, {"GET", "/templates/" + args.name}, printTemplate);
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
