#include "fuzz_targets.h"

namespace strata::fuzz {

namespace {

struct NamedTarget {
  std::string_view name;
  OneInput run;
};

constexpr NamedTarget kTargets[] = {
    {"qcow2", qcow2ImageOneInput},
    {"nbd", nbdServerOneInput},
    {"nbd-tls", nbdTlsServerOneInput},
    {"virtio", virtioDevicesOneInput},
    {"mmio", boardMmioOneInput},
    {"sbi", sbiOneInput},
    {"boot", bootLoaderOneInput},
    {"device-tree", deviceTreeOneInput},
    {"volume-meta", volumeMetadataOneInput},
    {"image-check", imageCheckOneInput},
    {"vm-spec", vmSpecOneInput},
    {"openflow", openFlowOneInput},
    {"net-offload", netOffloadOneInput},
    {"websocket", websocketOneInput},
    {"http-request", httpRequestOneInput},
};

}  // namespace

OneInput findTarget(std::string_view name) {
  for (const auto& target : kTargets)
    if (target.name == name) return target.run;
  return nullptr;
}

std::string targetNames() {
  std::string names;
  for (const auto& target : kTargets) names.append(names.empty() ? "" : " ").append(target.name);
  return names;
}

}  // namespace strata::fuzz
