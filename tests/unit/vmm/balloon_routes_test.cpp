// The balloon's API routes as a client sees them: wrong bodies, targets past
// the guest's memory and a VM without a balloon get clear 4xx answers; a good
// target is kept for the device (the next boot's, when none runs now).
#include "vmm/balloon_routes.h"

#include <gtest/gtest.h>

namespace strata::vmm {
namespace {

constexpr uint64_t kMemory = 256ull << 20;

TEST(BalloonRoutes, SetsAndShowsTheTarget) {
  BalloonControl balloon(uint64_t{0}, kMemory);
  ApiRouter router;
  addBalloonRoutes(router, balloon);
  auto set = router.dispatch("PUT", "/vm/balloon", R"({"target_bytes": 134217728})");
  EXPECT_EQ(set.status, 200) << set.body.dump();
  EXPECT_EQ(balloon.targetBytes(), 128ull << 20);
  auto shown = router.dispatch("GET", "/vm/balloon", "");
  EXPECT_EQ(shown.status, 200);
  EXPECT_EQ(shown.body["target_bytes"], 128ull << 20);
  EXPECT_EQ(shown.body["device_active"], false);  // no boot running in this test
}

TEST(BalloonRoutes, RefusesBadRequests) {
  BalloonControl balloon(uint64_t{64} << 20, kMemory);
  ApiRouter router;
  addBalloonRoutes(router, balloon);
  for (const char* body : {R"({})", R"({"target_bytes": -1})", R"({"target_bytes": "1G"})", R"([1])",
                           R"({"target_bytes": 1.5})"})
    EXPECT_EQ(router.dispatch("PUT", "/vm/balloon", body).status, 400) << body;
  auto tooBig = router.dispatch("PUT", "/vm/balloon", R"({"target_bytes": 268435457})");
  EXPECT_EQ(tooBig.status, 400);
  EXPECT_NE(tooBig.body["error"].get<std::string>().find("more than the guest's"), std::string::npos);
  EXPECT_EQ(balloon.targetBytes(), 64ull << 20);  // unchanged by any of them
}

TEST(BalloonRoutes, VmWithoutBalloonAnswers404) {
  BalloonControl balloon(std::nullopt, kMemory);
  ApiRouter router;
  addBalloonRoutes(router, balloon);
  EXPECT_EQ(router.dispatch("GET", "/vm/balloon", "").status, 404);
  EXPECT_EQ(router.dispatch("PUT", "/vm/balloon", R"({"target_bytes": 0})").status, 404);
}

}  // namespace
}  // namespace strata::vmm
