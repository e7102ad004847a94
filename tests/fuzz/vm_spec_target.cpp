// The daemon's VM spec validation (control::parseVmSpec) on the bytes as a
// request body, as an admin and as a tenant. A spec it accepts must hold a
// valid name, limits in range, and survive the store's round trip unchanged.
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "control/vm_spec.h"
#include "fuzz_targets.h"

namespace strata::fuzz {

namespace {

void require(bool invariant) {
  if (!invariant) std::abort();
}

}  // namespace

int vmSpecOneInput(const uint8_t* data, size_t size) {
  auto body = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (body.is_discarded()) return 0;
  for (const auto& policy : {control::PathPolicy{true, ""}, control::PathPolicy{false, "/nonexistent/tenants/t"}}) {
    auto spec = control::parseVmSpec(body, "t", policy);
    if (!spec) {
      require(!spec.error().message.empty());
      continue;
    }
    require(control::isValidName(spec->name));
    require(spec->templateName.empty() || control::isValidName(spec->templateName));
    require(spec->cpus >= 1 && spec->cpus <= 8 && spec->memoryMib >= 16);
    require(policy.admin || spec->disks.empty());  // a tenant's directory that does not exist holds no file
    auto stored = control::vmSpecFromStored(spec->name, "t", control::toJson(*spec).dump());
    require(control::runArguments(stored, "s", "c") == control::runArguments(*spec, "s", "c"));
    require(stored.templateName == spec->templateName);
  }
  return 0;
}

}  // namespace strata::fuzz
