// `strata daemon` as a process: its REST API's authentication, tenant
// isolation and refusals of malformed requests, quotas under parallel
// clients, state that survives a kill -9, templates and their linked clones,
// the event stream read by curl, and the default guest booted, driven and
// adopted through it.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "daemon_process.h"

namespace strata::test {
namespace {

using nlohmann::json;

TEST(DaemonApi, NeedsAValidTokenExceptForTheOpenApiDocument) {
  DaemonProcess daemon("auth");
  EXPECT_EQ(daemon.raw("GET", "/vms").status, 401);
  auto wrong = daemon.raw("GET", "/vms", "", "strata_0000");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_TRUE(contains(wrong.body, "unknown token"));
  auto document = daemon.raw("GET", "/openapi.json");
  EXPECT_EQ(document.status, 200);
  EXPECT_EQ(json::parse(document.body, nullptr, false)["info"]["title"], "strata daemon API");
  EXPECT_EQ(daemon.call("GET", "/vms").first, 200);
  EXPECT_EQ(std::filesystem::status(daemon.socket()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(std::filesystem::status(daemon.dataDir() + "/admin.token").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(DaemonApi, ATenantSeesAndTouchesOnlyItsOwnVms) {
  DaemonProcess daemon("tenants");
  std::string acme = daemon.newTenantToken("acme"), globex = daemon.newTenantToken("globex");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "a1"}}, acme).first, 201);
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "g1"}}, globex).first, 201);

  auto [listed, list] = daemon.call("GET", "/vms", nullptr, globex);
  ASSERT_EQ(listed, 200);
  ASSERT_EQ(list.size(), 1u) << list;
  EXPECT_EQ(list[0]["name"], "g1");
  EXPECT_EQ(daemon.call("GET", "/vms").second.size(), 2u);  // the admin sees both

  // Another tenant's VM answers exactly like one that does not exist.
  auto other = daemon.raw("GET", "/vms/a1", "", globex), missing = daemon.raw("GET", "/vms/zz", "", globex);
  EXPECT_EQ(other.status, 404);
  EXPECT_EQ(json::parse(other.body)["error"], "no VM a1");
  EXPECT_EQ(json::parse(missing.body)["error"], "no VM zz");
  for (const char* action : {"start", "shutdown", "destroy", "pause", "resume", "reboot"})
    EXPECT_EQ(daemon.call("POST", std::string("/vms/a1/") + action, nullptr, globex).first, 404) << action;
  EXPECT_EQ(daemon.call("DELETE", "/vms/a1", nullptr, globex).first, 404);
  EXPECT_EQ(daemon.call("GET", "/vms/a1", nullptr, acme).first, 200);

  EXPECT_EQ(daemon.call("POST", "/vms", {{"name", "x"}, {"tenant", "acme"}}, globex).first, 403);
  EXPECT_EQ(daemon.call("POST", "/vms", {{"name", "a1"}}, globex).first, 409);  // names are per host
  auto tenants = daemon.call("GET", "/tenants", nullptr, acme).second;
  ASSERT_EQ(tenants.size(), 1u);
  EXPECT_EQ(tenants[0]["name"], "acme");
  EXPECT_EQ(daemon.call("GET", "/tenants/globex", nullptr, acme).first, 404);
  EXPECT_EQ(daemon.call("POST", "/tenants", {{"name", "evil"}}, acme).first, 403);
  EXPECT_EQ(daemon.call("POST", "/tenants/acme/tokens", nullptr, acme).first, 403);
  EXPECT_EQ(daemon.call("PUT", "/tenants/acme/quota", {{"vms", 100}}, acme).first, 403);
  EXPECT_EQ(daemon.call("DELETE", "/vms/a1", nullptr, acme).first, 200);
  EXPECT_EQ(daemon.call("GET", "/vms/a1").first, 404);
}

TEST(DaemonApi, RefusesMalformedRequestsWithAJsonError) {
  DaemonProcess daemon("malformed");
  std::string token = daemon.adminToken();
  auto expect = [&](const control::HttpReply& reply, int status, const std::string& message) {
    EXPECT_EQ(reply.status, status) << reply.body;
    auto body = json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << reply.body;
    EXPECT_TRUE(contains(body["error"].get<std::string>(), message));
  };
  expect(daemon.raw("POST", "/vms", "{\"name\": ", token), 400, "not valid JSON");
  expect(daemon.raw("POST", "/vms", "[1, 2]", token), 400, "must be a JSON object");
  expect(daemon.raw("POST", "/vms", R"({"name": "a", "gpu": true})", token), 400, "unknown field 'gpu'");
  expect(daemon.raw("POST", "/vms", R"({"name": "../../etc"})", token), 400, "name:");
  expect(daemon.raw("POST", "/vms", R"({"name": "a", "cpus": 99})", token), 400, "cpus: expected an integer from 1 to 8");
  expect(daemon.raw("POST", "/vms", R"({"name": "a", "kernel": "/nonexistent"})", token), 400, "does not exist");
  expect(daemon.raw("POST", "/vms", "{\"name\": \"" + std::string(100000, 'a') + "\"}", token), 413, "413");
  expect(daemon.raw("GET", "/vms/..%2F..%2Fetc", "", token), 404, "no route for GET /vms/../../etc");
  expect(daemon.raw("GET", "/nowhere", "", token), 404, "no route for GET /nowhere");
  // Found by the http-request fuzz target: a path that is not UTF-8 made the 404's JSON throw, which ended the daemon.
  expect(daemon.raw("GET", "/vms/a1/conso\x90\x01le", "", token), 404, "no route for GET /vms/a1/conso");
  expect(daemon.raw("GET", "/vms/a\x90", "", token), 404, "no VM a");
  expect(daemon.raw("POST", "/tenants", "{\"name\": \"a\x90\"}", token), 400, "not valid JSON");
  expect(daemon.raw("PUT", "/tenants/default/quota", R"({"vms": -1})", token), 400, "vms:");
  expect(daemon.raw("PUT", "/tenants/default/quota", R"({"cpu": 1})", token), 400, "unknown field 'cpu'");
  expect(daemon.raw("POST", "/tenants", R"({"name": "a b"})", token), 400, "name:");
  expect(daemon.raw("GET", "/usage?from=yesterday", "", token), 400, "from:");
  expect(daemon.raw("POST", "/vms/nothere/start", "", token), 404, "no VM nothere");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "idle"}}).first, 201);
  expect(daemon.raw("POST", "/vms/idle/pause", "", token), 409, "idle is stopped");
  expect(daemon.raw("POST", "/vms/idle/shutdown", "", token), 409, "idle is stopped");
}

// Found by the http-request fuzz target: cpp-httplib took a client's end of stream, passed on by the
// daemon's front, for a dead socket and dropped the reply (`printf 'GET ...' | nc -N` got nothing).
TEST(DaemonApi, AnswersAClientThatEndsItsSideAfterTheRequest) {
  DaemonProcess daemon("halfclose");
  for (int round = 0; round < 3; ++round) {
    auto connected = control::connectUnixSocket(daemon.socket());
    ASSERT_TRUE(connected) << connected.error().message;
    std::string request = "GET /vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + daemon.adminToken() + "\r\n\r\n";
    ASSERT_EQ(::send(connected->get(), request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    ::shutdown(connected->get(), SHUT_WR);
    timeval limit{30, 0};
    ::setsockopt(connected->get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string reply;
    char buffer[4096];
    // Up to the reply's end; the connection itself ends only after the API server's keep-alive timeout.
    for (ssize_t n; !contains(reply, "\r\n\r\n[]") && (n = ::recv(connected->get(), buffer, sizeof buffer, 0)) > 0;)
      reply.append(buffer, n);
    EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << "round " << round << ": '" << reply << "'";
    EXPECT_TRUE(contains(reply, "\r\n\r\n[]")) << reply;
  }
}

TEST(DaemonApi, ParallelClientsCannotExceedTheQuota) {
  DaemonProcess daemon("quota");
  std::string token = daemon.newTenantToken("acme");
  ASSERT_EQ(daemon.call("PUT", "/tenants/acme/quota", {{"vms", 3}, {"vcpus", 100}}).first, 200);
  std::vector<int> statuses(48);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < statuses.size(); ++i)
    clients.emplace_back([&, i] {
      statuses[i] = daemon.call("POST", "/vms", {{"name", "vm" + std::to_string(i)}}, token).first;
    });
  for (auto& client : clients) client.join();
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 201), 3);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 403), 45) << json(statuses);
  auto tenant = daemon.call("GET", "/tenants/acme", nullptr, token).second;
  EXPECT_EQ(tenant["used"]["vms"], 3);
  auto over = daemon.call("POST", "/vms", {{"name", "one-more"}}, token);
  EXPECT_EQ(over.first, 403);
  EXPECT_TRUE(contains(over.second["error"].get<std::string>(), "quota exceeded: vms 3 in use + 1 asked > 3"));
}

TEST(DaemonApi, DefinitionsAndTokensSurviveAKill9) {
  DaemonProcess daemon("restart");
  std::string token = daemon.newTenantToken("acme");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "kept"}, {"cpus", 2}}, token).first, 201);
  auto second = runShell(strataBinary() + " daemon --data-dir " + daemon.dataDir() + " --socket " +
                         daemon.dataDir() + "/other.sock 2>&1");
  EXPECT_EQ(second.exitCode, 1);
  EXPECT_TRUE(contains(second.output, "another strata daemon is using this data directory"));
  daemon.stop(SIGKILL);
  daemon.start();
  auto [status, vm] = daemon.call("GET", "/vms/kept", nullptr, token);
  ASSERT_EQ(status, 200) << vm;
  EXPECT_EQ(vm["cpus"], 2);
  EXPECT_EQ(vm["state"], "stopped");
}

TEST(DaemonCli, ListsAsATableOrJsonAndNamesErrorsWithTheirStatus) {
  DaemonProcess daemon("cli");
  std::string vm = strataBinary() + " vm ";
  std::string options = " --daemon " + daemon.socket() + " --token " + daemon.adminToken();
  std::string spec = temporaryPath("cli-spec.json");
  std::ofstream(spec) << R"({"name": "web1", "cpus": 2, "memory_mib": 128})";
  auto defined = runShell(vm + "define " + spec + options + " 2>&1");
  EXPECT_EQ(defined.exitCode, 0) << defined.output;
  auto table = runShell(vm + "list" + options + " 2>&1");
  EXPECT_EQ(table.exitCode, 0) << table.output;
  EXPECT_TRUE(contains(table.output, "NAME"));
  EXPECT_TRUE(contains(table.output, "web1                     default          stopped      2     128M"));
  auto listed = runShell(vm + "list -o json" + options);
  auto list = json::parse(listed.output, nullptr, false);
  ASSERT_TRUE(list.is_array()) << listed.output;
  EXPECT_EQ(list[0]["memory_mib"], 128);
  auto missing = runShell(vm + "info nope" + options + " 2>&1");
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_TRUE(contains(missing.output, "strata vm info nope: HTTP 404: no VM nope"));
  auto unauthorized = runShell(vm + "list --daemon " + daemon.socket() + " --token wrong 2>&1");
  EXPECT_TRUE(contains(unauthorized.output, "HTTP 401: unknown token"));
  auto absent = runShell(vm + "list --daemon /nonexistent.sock --token x 2>&1");
  EXPECT_TRUE(contains(absent.output, "cannot reach the daemon"));
}

TEST(DaemonTemplates, AreTenantScopedCountedInTheDiskQuotaAndRefuseBadImports) {
  DaemonProcess daemon("templates");
  std::string acme = daemon.newTenantToken("acme"), globex = daemon.newTenantToken("globex");
  std::string acmeDir = daemon.dataDir() + "/tenants/acme";
  std::string image = acmeDir + "/base.raw";
  ASSERT_EQ(runShell("head -c 3145728 /dev/urandom > " + image).exitCode, 0);

  auto imported = importTemplate(daemon, {{"name", "base"}, {"path", image}}, acme);
  EXPECT_EQ(imported["state"], "succeeded") << imported;
  EXPECT_EQ(imported["done"], imported["total"]);
  auto [found, record] = daemon.call("GET", "/templates/base", nullptr, acme);
  ASSERT_EQ(found, 200) << record;
  EXPECT_EQ(record["tenant"], "acme");
  EXPECT_EQ(record["virtual_size"], 3145728);
  EXPECT_EQ(record["state"], "ready");
  EXPECT_EQ(daemon.call("GET", "/tenants/acme", nullptr, acme).second["used"]["disk_gib"], 1);

  // Another tenant sees nothing of it: not listed, 404 like a missing one, not clonable, not its operation.
  EXPECT_EQ(daemon.call("GET", "/templates", nullptr, globex).second, json::array());
  EXPECT_EQ(daemon.call("GET", "/templates/base", nullptr, globex).second["error"], "no template base");
  EXPECT_EQ(daemon.call("DELETE", "/templates/base", nullptr, globex).first, 404);
  EXPECT_EQ(daemon.call("POST", "/vms", {{"name", "g1"}, {"template", "base"}}, globex).second["error"],
            "no template base");
  EXPECT_EQ(daemon.call("GET", "/operations/" + imported["id"].get<std::string>(), nullptr, globex).first, 404);

  // A linked clone: the VM's first disk is a qcow2 overlay backed by the daemon's copy of the template.
  auto [created, vm] = daemon.call("POST", "/vms", {{"name", "a1"}, {"template", "base"}}, acme);
  ASSERT_EQ(created, 201) << vm;
  EXPECT_EQ(vm["template"], "base");
  EXPECT_EQ(vm["disk_gib"], 1);
  std::string clone = vm["disks"][0]["path"];
  auto info = json::parse(runShell(strataBinary() + " image info --output json " + clone).output, nullptr, false);
  EXPECT_EQ(info["format"], "qcow2") << info;
  EXPECT_EQ(info["virtual-size"], 3145728) << info;
  EXPECT_EQ(info["backing-filename"], daemon.dataDir() + "/templates/base.qcow2") << info;
  auto read = runShell("qemu-img convert -O raw " + clone + " " + clone + ".raw && cmp " + clone + ".raw " + image +
                       " 2>&1");
  EXPECT_EQ(read.exitCode, 0) << "the clone reads other bytes than the imported image: " << read.output;

  // The disk quota counts templates and clones; the template stays while a VM is cloned from it.
  ASSERT_EQ(daemon.call("PUT", "/tenants/acme/quota", {{"disk_gib", 2}}).first, 200);
  auto over = daemon.call("POST", "/vms", {{"name", "a2"}, {"template", "base"}}, acme);
  EXPECT_EQ(over.first, 403);
  EXPECT_EQ(over.second["error"], "quota exceeded: disk_gib 2 in use + 1 asked > 2 allowed");
  EXPECT_EQ(daemon.call("POST", "/templates", {{"name", "more"}, {"path", image}}, acme).first, 403);
  auto busy = daemon.call("DELETE", "/templates/base", nullptr, acme);
  EXPECT_EQ(busy.first, 409);
  EXPECT_EQ(busy.second["error"], "template base backs VM a1: delete its VMs first");
  EXPECT_EQ(daemon.call("DELETE", "/vms/a1", nullptr, acme).first, 200);
  EXPECT_FALSE(std::filesystem::exists(clone));
  EXPECT_EQ(daemon.call("DELETE", "/templates/base", nullptr, acme).first, 200);
  EXPECT_FALSE(std::filesystem::exists(daemon.dataDir() + "/templates/base.qcow2"));

  // An admin's template without a tenant is shared: every tenant clones it, only the admin deletes it.
  EXPECT_EQ(importTemplate(daemon, {{"name", "shared"}, {"path", image}})["state"], "succeeded");
  EXPECT_EQ(daemon.call("GET", "/templates", nullptr, globex).second[0]["name"], "shared");
  EXPECT_EQ(daemon.call("POST", "/vms", {{"name", "g1"}, {"template", "shared"}}, globex).first, 201);
  EXPECT_EQ(daemon.call("DELETE", "/templates/shared", nullptr, globex).first, 403);

  // Refused imports: a 4xx JSON error naming what is wrong.
  auto refused = [&](const json& request, const std::string& token, int status, const std::string& message) {
    auto [got, body] = daemon.call("POST", "/templates", request, token);
    EXPECT_EQ(got, status) << request << " " << body;
    EXPECT_TRUE(contains(body.value("error", ""), message)) << request << " " << body;
  };
  refused({{"name", "x"}, {"path", "/etc/passwd"}}, acme, 400, "outside the tenant's directory");
  refused({{"name", "x"}, {"path", acmeDir + "/../globex/../../admin.token"}}, acme, 400, "outside the tenant's");
  refused({{"name", "../x"}, {"path", image}}, acme, 400, "name:");
  refused({{"name", "x"}, {"path", image}, {"size", 1}}, acme, 400, "unknown field 'size'");
  refused({{"name", "x"}, {"path", image}, {"format", "qcow2"}}, acme, 400, "is raw, not qcow2");
  refused({{"name", "x"}, {"path", image}, {"tenant", "globex"}}, acme, 403, "only for tenant acme");
  refused({{"name", "shared"}, {"path", image}}, daemon.adminToken(), 409, "already exists");
  std::string backed = acmeDir + "/backed.qcow2";
  auto made = runShell(strataBinary() + " image create -f qcow2 -b /etc/passwd -F raw " + backed + " 2>&1");
  ASSERT_EQ(made.exitCode, 0) << made.output;
  refused({{"name", "x"}, {"path", backed}}, acme, 400, "has a backing file");
  EXPECT_EQ(daemon.call("GET", "/templates/x", nullptr, acme).first, 404);  // nothing half made stays
}

TEST(DaemonEvents, StreamsOnlyTheTenantsOwnVmChangesToCurl) {
  DaemonProcess daemon("events");
  std::string acme = daemon.newTenantToken("acme"), globex = daemon.newTenantToken("globex");
  std::string stream = daemon.dataDir() + "/events.txt";
  // curl as the client: the SSE response as it arrives, into a file.
  std::string curl = "curl -sN --unix-socket " + daemon.socket() + " -H 'Authorization: Bearer " + globex +
                     "' http://localhost/events > " + stream + " 2>&1 & echo $!";
  pid_t client = std::stoi(runShell(curl).output);
  ASSERT_TRUE(waitFor([&] { return contains(readFile(stream), ": subscribed"); }, std::chrono::seconds(10)))
      << readFile(stream);
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "a1"}}, acme).first, 201);
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "g1"}}, globex).first, 201);
  ASSERT_EQ(daemon.call("DELETE", "/vms/g1", nullptr, globex).first, 200);
  EXPECT_TRUE(waitFor([&] { return contains(readFile(stream), "\"deleted\""); }, std::chrono::seconds(10)))
      << readFile(stream);
  ::kill(client, SIGTERM);
  std::string events = readFile(stream);
  EXPECT_TRUE(contains(events, "event: vm\ndata: {\"state\":\"defined\",\"tenant\":\"globex\",\"vm\":\"g1\"}\n\n"))
      << events;
  EXPECT_TRUE(contains(events, "data: {\"state\":\"deleted\",\"tenant\":\"globex\",\"vm\":\"g1\"}")) << events;
  EXPECT_FALSE(contains(events, "a1")) << "another tenant's event leaked: " << events;
  EXPECT_FALSE(contains(events, "acme")) << events;
  EXPECT_EQ(daemon.raw("GET", "/events", "", "wrong").status, 401);
}

TEST(DaemonTls, ServesTheApiOverTlsWithBearerTokensToCurl) {
  int port = 20000 + ::getpid() % 20000;
  std::string listen = "tcp:127.0.0.1:" + std::to_string(port);
  std::string dir = temporaryPath("tls");
  DaemonProcess daemon("tls", {"--listen", listen, "--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"},
                       makeSelfSignedCertificate);
  std::string curl = "cd " + daemon.dataDir() + " && curl -s --cacert cert.pem -w ' %{http_code}' ";
  std::string url = " https://127.0.0.1:" + std::to_string(port);
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "over-tls"}}).first, 201);
  auto listed = runShell(curl + "-H 'Authorization: Bearer " + daemon.adminToken() + "'" + url + "/vms");
  EXPECT_TRUE(contains(listed.output, "\"name\":\"over-tls\"")) << listed.output;
  EXPECT_TRUE(contains(listed.output, "] 200")) << listed.output;
  auto wrong = runShell(curl + "-H 'Authorization: Bearer strata_00'" + url + "/vms");
  EXPECT_EQ(wrong.output, "{\"error\":\"unknown token\"} 401");
  auto clear = runShell("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" + std::to_string(port) + "/vms");
  EXPECT_EQ(clear.output, "000") << "the TCP listener answered HTTP in the clear";

  auto noCert = runShell(strataBinary() + " daemon --data-dir " + daemon.dataDir() + "-plain --socket " +
                         daemon.dataDir() + "-plain.sock --listen " + listen + " 2>&1");
  EXPECT_EQ(noCert.exitCode, 1);
  EXPECT_TRUE(contains(noCert.output, "--listen needs --tls-cert and --tls-key")) << noCert.output;
}

TEST(DaemonCli, ManagesTenantsQuotasUsageAndTemplates) {
  DaemonProcess daemon("clitenant");  // short: the VMs' socket paths under it must fit sun_path
  std::string options = " --daemon " + daemon.socket() + " --token " + daemon.adminToken();
  std::string strata = strataBinary() + " ";
  auto created = runShell(strata + "tenant create acme" + options + " 2>&1");
  EXPECT_EQ(created.exitCode, 0) << created.output;
  auto quota = runShell(strata + "tenant quota acme --vms 2 --disk-gib 5" + options + " 2>&1");
  EXPECT_EQ(quota.exitCode, 0) << quota.output;
  auto table = runShell(strata + "tenant list" + options + " 2>&1");
  EXPECT_TRUE(contains(table.output, "acme                     0/2         0/-         0/-             0/5")) << table.output;
  auto info = json::parse(runShell(strata + "tenant info acme -o json" + options).output, nullptr, false);
  EXPECT_EQ(info["quota"]["disk_gib"], 5) << info;
  std::string token = runShell(strata + "tenant token acme" + options).output;
  ASSERT_TRUE(contains(token, "strata_")) << token;
  token.pop_back();
  auto duplicate = runShell(strata + "tenant create acme" + options + " 2>&1");
  EXPECT_EQ(duplicate.exitCode, 1);
  EXPECT_TRUE(contains(duplicate.output, "strata tenant create acme: HTTP 409: tenant acme already exists"));
  auto forbidden = runShell(strata + "tenant create evil --daemon " + daemon.socket() + " --token " + token + " 2>&1");
  EXPECT_TRUE(contains(forbidden.output, "HTTP 403: this needs an admin token")) << forbidden.output;

  std::string image = daemon.dataDir() + "/tenants/acme/disk.raw";
  ASSERT_EQ(runShell("head -c 1048576 /dev/zero > " + image).exitCode, 0);
  std::string asAcme = " --daemon " + daemon.socket() + " --token " + token;
  auto imported = runShell(strata + "template import base " + image + asAcme + " 2>&1");
  EXPECT_EQ(imported.exitCode, 0) << imported.output;
  EXPECT_TRUE(contains(imported.output, "base                     acme             ready")) << imported.output;
  auto clone = runShell(strata + "vm create --template base --name web1 --no-start -o json" + asAcme + " 2>&1");
  EXPECT_EQ(json::parse(clone.output, nullptr, false)["template"], "base") << clone.output;
  auto busy = runShell(strata + "template delete base" + asAcme + " 2>&1");
  EXPECT_TRUE(contains(busy.output, "strata template delete base: HTTP 409: template base backs VM web1")) << busy.output;
  auto templates = json::parse(runShell(strata + "template list -o json" + asAcme).output, nullptr, false);
  EXPECT_EQ(templates.size(), 1u) << templates;

  auto csv = runShell(strata + "usage -o csv" + options);
  EXPECT_TRUE(contains(csv.output, "vm,tenant,start,end,vcpu_seconds,memory_gib_hours,disk_gib_hours,rx_bytes,tx_bytes\n")) << csv.output;
  auto badRange = runShell(strata + "usage --from yesterday" + options + " 2>&1");
  EXPECT_TRUE(contains(badRange.output, "strata usage: HTTP 400: from: expected UNIX seconds")) << badRange.output;
}

TEST(DaemonVm, MadeFromATemplateBootsFromItsLinkedClone) {
  DaemonProcess daemon("vmclone");
  auto imported = importTemplate(daemon, {{"name", "rootfs"}, {"path", defaultGuestFile("rootfs.ext4")}});
  ASSERT_EQ(imported["state"], "succeeded") << imported;
  std::string templateFile = daemon.dataDir() + "/templates/rootfs.qcow2";
  auto templateBefore = runShell("md5sum < " + templateFile).output;
  // No initrd: the kernel mounts the clone as / and runs the disk's own /init, which prints the line.
  auto [defined, vm] = daemon.call("POST", "/vms", {{"name", "web1"}, {"template", "rootfs"},
                                                    {"kernel", defaultGuestFile("Image")},
                                                    {"append", "console=ttyS0 root=/dev/vda rw"}});
  ASSERT_EQ(defined, 201) << vm;
  auto [started, running] = daemon.call("POST", "/vms/web1/start");
  ASSERT_EQ(started, 200) << running;
  std::string console = running["console"];
  EXPECT_TRUE(waitFor([&] { return contains(readFile(console), "strata-guest: userspace up"); },
                      std::chrono::seconds(240)))
      << readFile(console);
  EXPECT_EQ(daemon.call("POST", "/vms/web1/destroy").first, 200);
  EXPECT_EQ(runShell("md5sum < " + templateFile).output, templateBefore) << "the guest wrote into the template";
  auto check = runShell(strataBinary() + " image check " + daemon.dataDir() + "/vms/web1/disk.qcow2 2>&1");
  EXPECT_EQ(check.exitCode, 0) << check.output;
}

TEST(DaemonVm, BootsTheDefaultGuestAndIsAdoptedByARestartedDaemon) {
  DaemonProcess daemon("vm");
  ASSERT_EQ(daemon.call("POST", "/vms", {{"name", "guest"}, {"cpus", 2}}).first, 201);
  auto [started, vm] = daemon.call("POST", "/vms/guest/start");
  ASSERT_EQ(started, 200) << vm;
  EXPECT_EQ(vm["state"], "running");
  pid_t pid = vm["pid"].get<pid_t>();
  std::string console = vm["console"].get<std::string>();
  ASSERT_TRUE(waitFor([&] { return readFile(console).find("strata-guest: userspace up") != std::string::npos; },
                      std::chrono::seconds(240)))
      << readFile(console);

  daemon.stop(SIGKILL);
  EXPECT_FALSE(processEnded(pid)) << "the VM died with the daemon";
  daemon.start();
  auto [found, adopted] = daemon.call("GET", "/vms/guest");
  ASSERT_EQ(found, 200);
  EXPECT_EQ(adopted["state"], "running") << adopted;
  EXPECT_EQ(adopted["pid"], pid);

  auto [paused, afterPause] = daemon.call("POST", "/vms/guest/pause");
  EXPECT_EQ(paused, 200) << afterPause;
  EXPECT_EQ(afterPause["state"], "paused");
  EXPECT_EQ(daemon.call("GET", "/vms").second[0]["state"], "paused");
  auto [resumed, afterResume] = daemon.call("POST", "/vms/guest/resume");
  EXPECT_EQ(resumed, 200) << afterResume;
  EXPECT_EQ(afterResume["state"], "running");
  auto [rebooted, afterReboot] = daemon.call("POST", "/vms/guest/reboot");
  EXPECT_EQ(rebooted, 200) << afterReboot;
  EXPECT_EQ(afterReboot["state"], "running");
  EXPECT_EQ(afterReboot["pid"], pid);  // a reboot stays in the same process
  // The same through the CLI, which names the VM instead of its API socket.
  std::string cli = "STRATA_TOKEN=" + daemon.adminToken() + " " + strataBinary() + " vm ";
  auto pausedByCli = runShell(cli + "pause guest --daemon " + daemon.socket() + " 2>&1");
  EXPECT_EQ(pausedByCli.exitCode, 0) << pausedByCli.output;
  EXPECT_TRUE(contains(pausedByCli.output, " paused "));
  auto status = runShell(cli + "status guest --json --daemon " + daemon.socket());
  EXPECT_EQ(json::parse(status.output, nullptr, false)["vm_api"]["state"], "paused") << status.output;
  auto resumedByCli = runShell(cli + "resume guest --daemon " + daemon.socket() + " 2>&1");
  EXPECT_TRUE(contains(resumedByCli.output, " running "));
  auto neither = runShell(cli + "pause 2>&1");
  EXPECT_TRUE(contains(neither.output, "give a VM NAME (one strata daemon manages) or --api-socket PATH"));

  // Metered every second while it ran, before and after the restart.
  ASSERT_TRUE(waitFor([&] { return !daemon.call("GET", "/usage").second.empty(); }, std::chrono::seconds(10)));
  auto usage = daemon.call("GET", "/usage").second;
  EXPECT_EQ(usage[0]["vm"], "guest");
  EXPECT_GT(usage[0]["vcpu_seconds"].get<double>(), 0.0) << usage;
  EXPECT_GT(usage[0]["memory_gib_hours"].get<double>(), 0.0) << usage;
  auto csv = daemon.raw("GET", "/usage?format=csv", "", daemon.adminToken());
  EXPECT_TRUE(contains(csv.body, "vm,tenant,start,end,vcpu_seconds,memory_gib_hours,disk_gib_hours,rx_bytes,tx_bytes\nguest,default,"));

  auto [stopped, afterShutdown] = daemon.call("POST", "/vms/guest/shutdown");
  EXPECT_EQ(stopped, 200) << afterShutdown;
  EXPECT_EQ(afterShutdown["state"], "stopped");
  EXPECT_TRUE(waitFor([&] { return processEnded(pid); }, std::chrono::seconds(10)));

  // A VM that crashes ends alone: the daemon records how, and keeps serving.
  auto [restarted, again] = daemon.call("POST", "/vms/guest/start");
  ASSERT_EQ(restarted, 200) << again;
  ::kill(again["pid"].get<pid_t>(), SIGABRT);
  ASSERT_TRUE(waitFor([&] { return daemon.call("GET", "/vms/guest").second["state"] == "stopped"; },
                      std::chrono::seconds(10)));
  EXPECT_EQ(daemon.call("GET", "/vms/guest").second["last_exit"], 128 + SIGABRT);
  EXPECT_EQ(daemon.call("DELETE", "/vms/guest").first, 200);
}

}  // namespace
}  // namespace strata::test
