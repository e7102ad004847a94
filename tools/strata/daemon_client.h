// What every command that talks to `strata daemon` shares: the --daemon and
// --token options, one request with its answer printed as JSON (-o json) or
// for people, and errors that name the command and the HTTP status.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "control/http_client.h"

namespace strata::cli {

struct DaemonConnection {
  std::string socket;
  std::string token;
  std::string output = "table";
};

// --daemon and --token, with the token from $STRATA_TOKEN when not given.
void addConnectionOptions(CLI::App& command, DaemonConnection& connection);
// The same and -o/--output table|json.
void addConnectionAndOutputOptions(CLI::App& command, DaemonConnection& connection);

// A JSON value as a table cell: strings bare, the rest as JSON.
std::string cell(const nlohmann::json& value);

// Sends one request; the parsed answer, or nullopt after printing
// "strata WHAT: HTTP STATUS: message" (or why the daemon was not reached).
std::optional<nlohmann::json> daemonRequest(const DaemonConnection& connection, const std::string& what,
                                            control::HttpRequest request);

// daemonRequest, then prints the answer (JSON for -o json); the exit status.
int daemonCall(const DaemonConnection& connection, const std::string& what, control::HttpRequest request,
               void (*printForPeople)(const nlohmann::json&));

// Polls GET /operations/ID until the operation ends (its percentage on a terminal's
// stderr); its final state, or nullopt after an error was printed.
std::optional<nlohmann::json> followOperation(const DaemonConnection& connection, const std::string& what,
                                              const std::string& id);

// Follows the operation a 202 answer (`started`) names and prints `then`'s
// answer once it succeeded; the exit status, with the operation's error printed.
int finishOperation(const DaemonConnection& connection, const std::string& what, const nlohmann::json& started,
                    control::HttpRequest then, void (*printForPeople)(const nlohmann::json&));

}  // namespace strata::cli
