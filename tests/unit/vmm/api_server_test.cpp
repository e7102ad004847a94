// The control API's router (dispatch, errors) and the OpenAPI document
// docs/api/vm-api.openapi.json, which must list exactly the routes served.
#include "vmm/api_server.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

#include <fmt/core.h>

#include "vmm/snapshot_routes.h"
#include "vmm/vm_routes.h"

namespace strata::vmm {
namespace {

ApiRouter echoRouter() {
  ApiRouter router;
  router.addRoute("PUT", "/echo", [](const nlohmann::json& body) { return ApiReply{200, {{"got", body}}}; });
  router.addRoute("PUT", "/strict", [](const nlohmann::json& body) {
    return ApiReply{200, {{"n", body.at("n").get<int>()}}};  // throws on a body of another shape
  });
  return router;
}

TEST(ApiRouter, DispatchesByPathAndMethodWithTheParsedBody) {
  auto reply = echoRouter().dispatch("PUT", "/echo", R"({"a": [1, 2]})");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body["got"]["a"][1], 2);
  EXPECT_TRUE(echoRouter().dispatch("PUT", "/echo", "").body["got"].is_null());
}

TEST(ApiRouter, RefusesWithAJsonErrorEachKindOfBadRequest) {
  ApiRouter router = echoRouter();
  struct Case {
    const char *method, *path, *body;
    int status;
  };
  for (const Case& bad : {Case{"PUT", "/nowhere", "", 404}, Case{"GET", "/echo", "", 405},
                          Case{"PUT", "/echo", "{\"a\":", 400}, Case{"PUT", "/echo", "\xff\xfe", 400},
                          Case{"PUT", "/strict", R"({"n": "seven"})", 400}, Case{"PUT", "/strict", "[]", 400}}) {
    auto reply = router.dispatch(bad.method, bad.path, bad.body);
    EXPECT_EQ(reply.status, bad.status) << bad.method << " " << bad.path << " " << bad.body;
    ASSERT_TRUE(reply.body.contains("error")) << reply.body.dump();
    EXPECT_TRUE(reply.body["error"].is_string());
  }
}

TEST(VmRoutes, StateChangeRefusesBodiesWithoutAKnownAction) {
  VmConfig config;
  VmControl control(config);
  ApiRouter router;
  addVmRoutes(router, control);
  for (const char* body : {"", "{}", R"({"action": 3})", R"({"action": "explode"})", R"(["pause"])"}) {
    auto reply = router.dispatch("PUT", "/vm/state", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_TRUE(reply.body.contains("error")) << body;
  }
  // No boot attached: the VM reads as running and pausing it waits for none.
  EXPECT_EQ(router.dispatch("GET", "/vm", "").body["state"], "running");
  EXPECT_EQ(router.dispatch("PUT", "/vm/state", R"({"action": "pause"})").body["state"], "paused");
  EXPECT_EQ(router.dispatch("PUT", "/vm/state", R"({"action": "pause"})").body["state"], "paused");
  EXPECT_EQ(router.dispatch("PUT", "/vm/state", R"({"action": "resume"})").body["state"], "running");
}

TEST(SnapshotRoutes, RefusesBadBodiesAndAnswersWithoutABoardWithAnError) {
  VmConfig config;
  VmControl control(config);
  ApiRouter router;
  addSnapshotRoutes(router, control);
  for (const char* body : {"", "{}", R"({"dir": 3})", R"({"dir": ""})", R"({"dir": "/tmp/x", "resume": "yes"})",
                           R"(["/tmp/x"])"}) {
    auto reply = router.dispatch("PUT", "/vm/snapshot", body);
    EXPECT_EQ(reply.status, 400) << body;
    EXPECT_TRUE(reply.body.contains("error")) << body;
  }
  // No boot attached (as between two boots of a reboot): nothing to save, and the VM runs on.
  auto reply = router.dispatch("PUT", "/vm/snapshot", R"({"dir": "/nonexistent/snap"})");
  EXPECT_EQ(reply.status, 500);
  EXPECT_TRUE(reply.body.contains("error"));
  EXPECT_EQ(control.state(), VmState::Running);
}

TEST(VmClock, StandsStillWhilePaused) {
  VmConfig config;
  VmControl control(config);
  control.pause();
  uint64_t atPause = control.guestNs();
  ::usleep(50'000);
  EXPECT_EQ(control.guestNs(), atPause);
  control.resume();
  uint64_t afterResume = control.guestNs();
  EXPECT_GE(afterResume, atPause);
  EXPECT_LT(afterResume - atPause, 40'000'000u) << "the 50 ms pause leaked into guest time";
}

TEST(ApiDocument, ListsExactlyTheRoutesTheServerServes) {
  std::ifstream file(STRATA_SOURCE_DIR "/docs/api/vm-api.openapi.json");
  ASSERT_TRUE(file) << "docs/api/vm-api.openapi.json is missing";
  auto document = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(document.is_discarded()) << "docs/api/vm-api.openapi.json is not valid JSON";
  ASSERT_TRUE(document.contains("openapi") && document["openapi"].get<std::string>().rfind("3.", 0) == 0);
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, operations] : document["paths"].items())
    for (const auto& [method, operation] : operations.items()) {
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.emplace(upper, path);
    }
  VmConfig config;
  VmControl control(config);
  ApiRouter router;
  addApiRoutes(router, control);
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& route : router.routes()) served.insert(route);
  for (const auto& [method, path] : served)
    EXPECT_TRUE(documented.count({method, path})) << method << " " << path << " is served but not documented";
  for (const auto& [method, path] : documented)
    EXPECT_TRUE(served.count({method, path})) << method << " " << path << " is documented but not served";
}

TEST(ApiDocument, DescribesThePostcopyPausedStateGetVmReports) {
  std::ifstream file(STRATA_SOURCE_DIR "/docs/api/vm-api.openapi.json");
  auto document = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(document.is_discarded());
  const auto& schemas = document["components"]["schemas"];
  VmConfig config;
  VmControl control(config);
  control.setPostcopyPaused();
  ApiRouter router;
  addApiRoutes(router, control);
  ApiReply reply = router.dispatch("GET", "/vm", "");
  ASSERT_EQ(reply.status, 200);
  ASSERT_EQ(reply.body.value("migration", ""), "postcopy-paused");
  for (const auto& [key, value] : reply.body.items())
    EXPECT_TRUE(schemas["Vm"]["properties"].contains(key)) << "GET /vm reports " << key << ", not documented";
  EXPECT_EQ(schemas["Vm"]["properties"]["migration"]["enum"], nlohmann::json::array({"postcopy-paused"}));
  const auto& states = schemas["MigrationProgress"]["properties"]["state"]["enum"];
  EXPECT_NE(std::find(states.begin(), states.end(), "postcopy-paused"), states.end());
}

TEST(ApiDocument, DescribesTheNicCountersGetVmStatsReports) {
  std::ifstream file(STRATA_SOURCE_DIR "/docs/api/vm-api.openapi.json");
  auto document = nlohmann::json::parse(file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(document.is_discarded());
  const auto& stats = document["components"]["schemas"]["Stats"];
  VmConfig config;
  config.tapDevices = {"tap0"};
  config.switchNets.resize(1);
  VmControl control(config);
  ASSERT_EQ(control.nicTraffic().size(), 2u);  // one per NIC, TAP ones first
  control.nicTraffic()[1].txBytes += 1514;
  control.nicTraffic()[1].txFrames += 1;
  ApiRouter router;
  addApiRoutes(router, control);
  ApiReply reply = router.dispatch("GET", "/vm/stats", "");
  ASSERT_EQ(reply.status, 200);
  for (const auto& [key, value] : reply.body.items())
    EXPECT_TRUE(stats["properties"].contains(key)) << "GET /vm/stats reports " << key << ", not documented";
  ASSERT_EQ(reply.body["nets"].size(), 2u) << reply.body;
  EXPECT_EQ(reply.body["nets"][0]["tx_bytes"], 0);
  EXPECT_EQ(reply.body["nets"][1]["tx_bytes"], 1514);
  EXPECT_EQ(reply.body["nets"][1]["tx_frames"], 1);
  for (const auto& [key, value] : reply.body["nets"][1].items())
    EXPECT_TRUE(stats["properties"]["nets"]["items"]["properties"].contains(key)) << key << " not documented";
}

TEST(VmApi, APostcopyPausedVmRefusesPauseAndResetButShutsDown) {
  VmConfig config;
  VmControl control(config);
  control.setPostcopyPaused();
  ApiRouter router;
  addApiRoutes(router, control);
  for (const char* action : {"pause", "reset"}) {
    ApiReply refused = router.dispatch("PUT", "/vm/state", fmt::format(R"({{"action": "{}"}})", action));
    EXPECT_EQ(refused.status, 409) << action;
    EXPECT_NE(refused.body.value("error", "").find("only shutdown"), std::string::npos) << refused.body;
  }
  ApiReply ended = router.dispatch("PUT", "/vm/state", R"({"action": "shutdown"})");
  EXPECT_EQ(ended.status, 200);
  EXPECT_EQ(ended.body.value("state", ""), "shutting_down");
}

}  // namespace
}  // namespace strata::vmm
