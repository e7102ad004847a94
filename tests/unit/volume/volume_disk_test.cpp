// "pool:NAME/VOLUME" disks through the pool registry, spec parsing, and a thin
// pool on mirrored data surviving the loss of a PV.
#include <gtest/gtest.h>

#include <fstream>

#include "storage/volume/pool_format.h"
#include "storage/volume/volume_disk.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

class VolumeDiskTest : public VolumeTest {};

TEST_F(VolumeDiskTest, SpecParsing) {
  EXPECT_TRUE(isVolumeDiskSpec("pool:tank/vm1"));
  EXPECT_FALSE(isVolumeDiskSpec("disk.qcow2"));
  auto spec = parseVolumeDiskSpec("pool:tank/vm1");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->pool, "tank");
  EXPECT_EQ(spec->volume, "vm1");
  EXPECT_FALSE(parseVolumeDiskSpec("pool:tank").ok());
  EXPECT_FALSE(parseVolumeDiskSpec("pool:/vm1").ok());
  EXPECT_FALSE(parseVolumeDiskSpec("pool:tank/../x").ok());
  EXPECT_FALSE(parseVolumeDiskSpec("pool:tank/a/b").ok());
}

TEST_F(VolumeDiskTest, OpensThroughTheRegistryAndOwnsThePool) {
  auto pvs = makePvs(2, 12);
  {
    auto pool = createPool(pvs);
    VolumeCreateOptions o;
    o.type = VolumeType::Mirror;
    o.sizeBytes = 2 * kMiB;
    ASSERT_TRUE(pool->createVolume("vm1", o).ok());
  }
  auto missing = openVolumeDisk("pool:tank/vm1", {}, *loop);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("not registered"), std::string::npos) << missing.error().message;

  ASSERT_TRUE(writePoolRegistry("tank", pvs).ok());
  auto listed = readPoolRegistry("tank");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(listRegisteredPools(), std::vector<std::string>{"tank"});
  auto data = pattern(kMiB, 51);
  {
    auto disk = openVolumeDisk("pool:tank/vm1", {}, *loop);
    ASSERT_TRUE(disk.ok()) << disk.error().message;
    EXPECT_EQ((*disk)->sizeBytes(), 2 * kMiB);
    EXPECT_FALSE((*disk)->readOnly());
    writeAt(**disk, 4096, data);
    flush(**disk);
    // The disk holds the pool (and its lock) by itself.
    auto second = openVolumeDisk("pool:tank/vm1", {}, *loop);
    EXPECT_FALSE(second.ok());
  }
  auto readOnly = openVolumeDisk("pool:tank/vm1", {.readOnly = true}, *loop);
  ASSERT_TRUE(readOnly.ok()) << readOnly.error().message;
  EXPECT_TRUE((*readOnly)->readOnly());
  EXPECT_TRUE(readAt(**readOnly, 4096, kMiB) == data);
  auto wrongVolume = openVolumeDisk("pool:tank/nope", {.readOnly = true}, *loop);
  ASSERT_FALSE(wrongVolume.ok());
  EXPECT_NE(wrongVolume.error().message.find("no volume named nope"), std::string::npos);
  auto byPaths = volume::openVolume(pvs, "vm1", {.readOnly = true}, *loop);
  ASSERT_TRUE(byPaths.ok());
}

TEST_F(VolumeDiskTest, RegistryWithAMissingPathOpensDegraded) {
  auto pvs = makePvs(2, 12);
  {
    auto pool = createPool(pvs);
    VolumeCreateOptions o;
    o.type = VolumeType::Mirror;
    o.sizeBytes = kMiB;
    ASSERT_TRUE(pool->createVolume("m", o).ok());
    auto device = openVolume(*pool, "m");
    writeAt(*device, 0, pattern(kMiB, 52));
  }
  ASSERT_TRUE(writePoolRegistry("tank", pvs).ok());
  ASSERT_EQ(::unlink(pvs[0].c_str()), 0);
  auto disk = openVolumeDisk("pool:tank/m", {}, *loop);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  EXPECT_TRUE(readAt(**disk, 0, kMiB) == pattern(kMiB, 52));
}

TEST_F(VolumeDiskTest, ThinPoolOnMirroredDataSurvivesAPvLoss) {
  auto pvs = makePvs(2, 24);
  auto data = pattern(3 * kMiB, 53);
  {
    auto pool = createPool(pvs);
    VolumeCreateOptions tp;
    tp.type = VolumeType::ThinPool;
    tp.sizeBytes = 8 * kMiB;
    tp.dataType = VolumeType::Mirror;
    ASSERT_TRUE(pool->createVolume("tp", tp).ok());
    VolumeCreateOptions t;
    t.type = VolumeType::Thin;
    t.thinPool = "tp";
    t.sizeBytes = 32 * kMiB;
    ASSERT_TRUE(pool->createVolume("t", t).ok());
    auto device = openVolume(*pool, "t");
    writeAt(*device, 5 * kMiB, data);
    flush(*device);
  }
  ASSERT_EQ(::unlink(pvs[1].c_str()), 0);
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  EXPECT_TRUE(pool->health(*pool->record().findVolume("t")).degraded);
  auto device = openVolume(*pool, "t");
  EXPECT_TRUE(readAt(*device, 5 * kMiB, data.size()) == data);
  auto more = pattern(kMiB, 54);
  writeAt(*device, 20 * kMiB, more);  // allocates, journals: all degraded
  flush(*device);
  EXPECT_TRUE(readAt(*device, 20 * kMiB, kMiB) == more);
}

}  // namespace
}  // namespace strata::storage::volume
