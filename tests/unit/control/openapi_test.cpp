// The OpenAPI document in docs/api/ (compiled into the daemon and served at
// /openapi.json) describes exactly the routes the server answers.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "control/api_server.h"

namespace strata::control {
namespace {

TEST(OpenApiDocument, DescribesExactlyTheServersRoutes) {
  auto document = nlohmann::json::parse(openApiDocument(), nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << "docs/api/daemon-api.openapi.json is not valid JSON";
  EXPECT_EQ(document["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::string> documented, served;
  for (const auto& [path, operations] : document["paths"].items())
    for (const auto& [method, operation] : operations.items()) {
      std::string upper;
      for (char c : method) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.insert(upper + " " + path);
      EXPECT_TRUE(operation.contains("responses")) << upper << " " << path;
    }
  for (const auto& route : apiRoutes()) served.insert(route.method + " " + route.path);
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace strata::control
