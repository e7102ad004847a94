// `strata image` end to end through the real binary (built next to this test
// in the build tree), cross-checked with qemu-img; check lists at most 100
// problems and counts the rest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>

#include "storage_test_util.h"

namespace strata::storage {
namespace {

using testing::pattern;
using testing::runCommand;
using testing::TempDir;
using testing::writeFile;

std::string strataBinary() {
  char self[PATH_MAX] = {};
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return {};
  auto path = std::filesystem::path(std::string(self, static_cast<size_t>(length))).parent_path().parent_path() / "strata";
  return std::filesystem::exists(path) ? path.string() : std::string{};
}

class ImageCli : public ::testing::Test {
 protected:
  void SetUp() override {
    strata = strataBinary();
    if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  }
  testing::CommandResult image(const std::string& arguments) {
    return runCommand("cd " + dir.path() + " && " + strata + " image " + arguments);
  }
  TempDir dir;
  std::string strata;
};

TEST_F(ImageCli, CreateInfoCheckConvertCommit) {
  auto created = image("create -f qcow2 -o cluster_size=4096 base.qcow2 64M");
  ASSERT_EQ(created.exitCode, 0) << created.output;
  auto qemuInfo = runCommand("qemu-img info " + dir.file("base.qcow2"));
  EXPECT_NE(qemuInfo.output.find("cluster_size: 4096"), std::string::npos) << qemuInfo.output;
  EXPECT_NE(qemuInfo.output.find("64 MiB"), std::string::npos);
  ASSERT_EQ(runCommand("qemu-io -c 'write -P 0x42 1M 2M' " + dir.file("base.qcow2")).exitCode, 0);

  // A linked clone without an explicit size takes the backing file's.
  ASSERT_EQ(image("create -f qcow2 -b base.qcow2 -F qcow2 clone.qcow2").exitCode, 0);
  auto json = image("info --output json clone.qcow2");
  ASSERT_EQ(json.exitCode, 0);
  EXPECT_NE(json.output.find("\"virtual-size\": 67108864"), std::string::npos) << json.output;
  EXPECT_NE(json.output.find("\"backing-filename\": \"base.qcow2\""), std::string::npos);
  ASSERT_EQ(runCommand("qemu-io -c 'write -P 0x43 2M 64k' " + dir.file("clone.qcow2")).exitCode, 0);
  EXPECT_EQ(image("check clone.qcow2").exitCode, 0);

  auto converted = image("convert -p -O raw clone.qcow2 flat.raw");
  ASSERT_EQ(converted.exitCode, 0) << converted.output;
  EXPECT_NE(converted.output.find("(100.00/100%)"), std::string::npos) << converted.output;
  EXPECT_EQ(runCommand("qemu-img compare " + dir.file("clone.qcow2") + " " + dir.file("flat.raw")).exitCode, 0);

  auto before = runCommand("md5sum < " + dir.file("base.qcow2")).output;
  auto committed = image("commit clone.qcow2");
  ASSERT_EQ(committed.exitCode, 0) << committed.output;
  EXPECT_NE(before, runCommand("md5sum < " + dir.file("base.qcow2")).output);
  EXPECT_EQ(runCommand("qemu-img compare " + dir.file("base.qcow2") + " " + dir.file("flat.raw")).exitCode, 0);
  EXPECT_EQ(runCommand("qemu-img check " + dir.file("base.qcow2")).exitCode, 0);
}

TEST_F(ImageCli, ErrorsAndExitCodes) {
  auto missing = image("info disk.img");
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.output.find("disk.img: No such file or directory"), std::string::npos) << missing.output;
  EXPECT_EQ(image("create -f vmdk x.img 1M").exitCode, 1);
  EXPECT_EQ(image("create -f qcow2 x.qcow2 12Q").exitCode, 1);
  EXPECT_EQ(image("create -f qcow2 -o cluster_size=1000 x.qcow2 1M").exitCode, 1);
  ASSERT_EQ(image("create -f qcow2 leaky.qcow2 1M").exitCode, 0);
  // Leak a cluster: refcount 1 for cluster 5 (past every table).
  auto bytes = testing::readFile(dir.file("leaky.qcow2"));
  bytes.resize(6 * 65536);
  bytes[0x20000 + 5 * 2 + 1] = 1;
  writeFile(dir.file("leaky.qcow2"), bytes);
  auto check = image("check leaky.qcow2");
  EXPECT_EQ(check.exitCode, 3) << check.output;
  EXPECT_NE(check.output.find("1 leaked clusters were found"), std::string::npos) << check.output;
  ASSERT_EQ(image("create -f raw r.img 1M").exitCode, 0);
  auto commit = image("commit r.img");
  EXPECT_EQ(commit.exitCode, 1);
  EXPECT_NE(commit.output.find("has no backing file"), std::string::npos);
}

TEST_F(ImageCli, CheckListsTheFirstHundredProblemsAndCountsTheRest) {
  ASSERT_EQ(image("create -f qcow2 leaky.qcow2 64M").exitCode, 0);
  // Refcount 1 for clusters 5..304, which nothing references.
  auto bytes = testing::readFile(dir.file("leaky.qcow2"));
  bytes.resize(305 * 65536);
  for (int cluster = 5; cluster < 305; ++cluster) bytes[0x20000 + cluster * 2 + 1] = 1;
  writeFile(dir.file("leaky.qcow2"), bytes);
  auto check = image("check leaky.qcow2");
  EXPECT_EQ(check.exitCode, 3) << check.output;
  EXPECT_EQ(runCommand("qemu-img check " + dir.file("leaky.qcow2")).exitCode, 3);
  size_t listed = 0;
  for (size_t at = check.output.find("Leaked cluster "); at != std::string::npos;
       at = check.output.find("Leaked cluster ", at + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed, 100u) << check.output;
  EXPECT_NE(check.output.find("... and 200 more problems not listed"), std::string::npos) << check.output;
  EXPECT_NE(check.output.find("300 leaked clusters were found"), std::string::npos) << check.output;
}

}  // namespace
}  // namespace strata::storage
