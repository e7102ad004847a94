#include <gtest/gtest.h>
#include <libfdt.h>

#include <string>

#include "machine/device_tree.h"
#include "machine/virt_layout.h"

namespace strata::machine {
namespace {

DeviceTreeSpec validSpec() {
  DeviceTreeSpec spec;
  spec.hartCount = 2;
  spec.ramSize = 64 << 20;
  spec.bootArgs = "console=ttyS0";
  spec.initrd = std::make_pair(virt::kRamBase + (32 << 20), virt::kRamBase + (33 << 20));
  spec.virtioSlots = {0, 1, 7};
  spec.rngSeed = {1, 2, 3};
  return spec;
}

TEST(DeviceTreeTest, BuildsACheckedTreeWithTheSpecsBootArguments) {
  auto tree = buildDeviceTree(validSpec());
  ASSERT_TRUE(tree.ok()) << tree.error().message;
  ASSERT_EQ(fdt_check_full(tree->data(), tree->size()), 0);
  int length = 0;
  const char* bootArgs =
      static_cast<const char*>(fdt_getprop(tree->data(), fdt_path_offset(tree->data(), "/chosen"), "bootargs", &length));
  ASSERT_NE(bootArgs, nullptr);
  EXPECT_EQ(std::string(bootArgs), "console=ttyS0");
  EXPECT_GE(fdt_path_offset(tree->data(), "/soc/virtio_mmio@10008000"), 0);
}

TEST(DeviceTreeTest, AcceptsTheLargestHartCount) {
  DeviceTreeSpec spec = validSpec();
  spec.hartCount = virt::kMaxHarts;
  EXPECT_TRUE(buildDeviceTree(spec).ok());
}

// Found by fuzz_device_tree: beyond kMaxHarts the harts' phandles collide with
// each other's interrupt controllers, and the tree was built anyway.
TEST(DeviceTreeTest, RefusesSpecsTheGuestWouldMisread) {
  auto refused = [](auto change) {
    DeviceTreeSpec spec = validSpec();
    change(spec);
    return !buildDeviceTree(spec).ok();
  };
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.hartCount = 0; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.hartCount = virt::kMaxHarts + 1; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.hartCount = 60000; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.ramSize = 0; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.ramSize = ~uint64_t{0}; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.initrd = std::make_pair(virt::kRamBase + 4096, virt::kRamBase); }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.initrd = std::make_pair(uint64_t{0}, uint64_t{4096}); }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.initrd = std::make_pair(virt::kRamBase, virt::kRamBase + (65 << 20)); }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.virtioSlots = {virt::kVirtioSlots}; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.virtioSlots = {3, 3}; }));
  EXPECT_TRUE(refused([](DeviceTreeSpec& s) { s.bootArgs = std::string("root=/dev/vda\0init=/bin/sh", 27); }));
}

}  // namespace
}  // namespace strata::machine
