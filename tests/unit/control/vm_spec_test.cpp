// VM specs from API clients: what is accepted, what each bad field is refused
// with, tenants confined to their own directory, and the `strata run` line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "control/vm_spec.h"

namespace strata::control {
namespace {

using nlohmann::json;

class VmSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("strata-spec-" + std::to_string(::getpid()));
    std::filesystem::create_directories(root_ / "tenants/acme");
    std::ofstream(root_ / "tenants/acme/disk.img").put('x');
    std::ofstream(root_ / "other.img").put('x');
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  PathPolicy tenant() const { return {false, (root_ / "tenants/acme").string()}; }
  std::string refusal(const json& body, const PathPolicy& policy) {
    auto spec = parseVmSpec(body, "acme", policy);
    return spec ? "accepted" : spec.error().message;
  }
  std::filesystem::path root_;
};

TEST_F(VmSpecTest, AcceptsAFullSpecAndBuildsTheRunCommandLine) {
  std::string disk = (root_ / "tenants/acme/disk.img").string();
  auto spec = parseVmSpec(json{{"name", "web-1"},
                               {"cpus", 2},
                               {"memory_mib", 512},
                               {"append", "console=ttyS0 quiet"},
                               {"disks", {{{"path", disk}, {"format", "raw"}, {"readonly", true}}}},
                               {"nets", {"network=lan"}}},
                          "acme", tenant());
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->diskGib, 1u);  // a one-byte file still counts one GiB
  EXPECT_EQ(spec->networks, std::vector<std::string>{"lan"});  // the daemon makes it a switch NIC
  spec->nets.push_back("switch=host,vlan=100");
  auto args = runArguments(*spec, "/d/vms/web-1/api.sock", "/d/vms/web-1/console.log");
  std::vector<std::string> expected{"run",       "--api-socket", "/d/vms/web-1/api.sock", "--console",
                                    "file=/d/vms/web-1/console.log", "--cpus", "2", "--mem", "512M", "--append",
                                    "console=ttyS0 quiet", "--disk", disk + ",format=raw,readonly", "--net",
                                    "switch=host,vlan=100"};
  EXPECT_EQ(args, expected);
  auto stored = vmSpecFromStored("web-1", "acme", toJson(*spec).dump());
  EXPECT_EQ(runArguments(stored, "s", "c"), runArguments(*spec, "s", "c"));
}

TEST_F(VmSpecTest, RefusesBadFieldsNamingThem) {
  auto admin = PathPolicy{true, ""};
  EXPECT_EQ(refusal(json::array(), admin), "expected a JSON object");
  EXPECT_EQ(refusal(json{{"name", "a"}, {"colour", "red"}}, admin), "unknown field 'colour'");
  for (const char* name : {"", "../etc", "a/b", "-a", "a b", "x.y"})
    EXPECT_NE(refusal(json{{"name", name}}, admin).find("name:"), std::string::npos) << name;
  EXPECT_NE(refusal(json{{"name", std::string(64, 'a')}}, admin).find("name:"), std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"cpus", 0}}, admin).find("cpus: expected an integer from 1 to 8"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"cpus", "2"}}, admin).find("cpus:"), std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"memory_mib", -5}}, admin).find("memory_mib:"), std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"append", "x\ny"}}, admin).find("append:"), std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"kernel", "relative/Image"}}, admin).find("kernel: expected an absolute"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"kernel", "/no/such/Image"}}, admin).find("does not exist"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"disks", {{{"path", "/tmp"}}}}}, admin).find("not a regular file"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"disks", {{{"path", "/x,format=raw"}}}}}, admin).find("','"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"disks", {"/x"}}}, admin).find("disks[0]: expected an object"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"nets", {"switch=a b"}}}, admin).find("nets[0]"), std::string::npos);
  EXPECT_EQ(refusal(json{{"name", "a"}, {"nets", {"tap=tap0"}}}, admin), "accepted");
  for (const json& name : {json("../base"), json(""), json(7)})
    EXPECT_NE(refusal(json{{"name", "a"}, {"template", name}}, admin).find("template:"), std::string::npos) << name;
  EXPECT_EQ(refusal(json{{"name", "a"}, {"template", "debian-min"}}, admin), "accepted");
}

TEST_F(VmSpecTest, ConfinesATenantToItsOwnDirectory) {
  EXPECT_EQ(refusal(json{{"name", "a"}, {"disks", {{{"path", (root_ / "tenants/acme/disk.img").string()}}}}},
                    tenant()),
            "accepted");
  for (std::string path : {(root_ / "other.img").string(), (root_ / "tenants/acme/../../other.img").string(),
                           std::string("/etc/passwd")})
    EXPECT_NE(refusal(json{{"name", "a"}, {"disks", {{{"path", path}}}}}, tenant()).find("outside the tenant's"),
              std::string::npos)
        << path;
  // A symlink inside the directory pointing out of it is resolved first.
  std::filesystem::create_symlink(root_ / "other.img", root_ / "tenants/acme/link.img");
  EXPECT_NE(refusal(json{{"name", "a"}, {"kernel", (root_ / "tenants/acme/link.img").string()}}, tenant())
                .find("outside the tenant's"),
            std::string::npos);
  EXPECT_NE(refusal(json{{"name", "a"}, {"nets", {"tap=tap0"}}}, tenant()).find("nets[0]"), std::string::npos);
  // A raw switch port could join any VLAN of the daemon's host switch.
  EXPECT_NE(refusal(json{{"name", "a"}, {"nets", {"switch=host,vlan=100"}}}, tenant()).find("expected network=NAME"),
            std::string::npos);
}

TEST_F(VmSpecTest, NamesDaemonVolumesAndNetworksOnlyByValidNames) {
  auto spec = parseVmSpec(json{{"name", "a"}, {"disks", {{{"volume", "data"}, {"readonly", true}}}}, {"nets", {"network=lan"}}},
                          "acme", tenant());
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->disks[0].volume, "data");
  EXPECT_TRUE(spec->disks[0].readOnly);
  EXPECT_EQ(spec->diskGib, 0u);  // the volume counts in the quota itself
  EXPECT_EQ(vmSpecFromStored("a", "acme", toJson(*spec).dump()).disks[0].volume, "data");
  EXPECT_EQ(vmSpecFromStored("a", "acme", toJson(*spec).dump()).networks, std::vector<std::string>{"lan"});
  for (const json& disk : {json{{"volume", "../x"}}, json{{"volume", "data"}, {"path", "/etc/passwd"}},
                           json{{"volume", 5}}, json{{"volume", "data"}, {"format", "raw"}}})
    EXPECT_NE(refusal(json{{"name", "a"}, {"disks", {disk}}}, tenant()).find("disks[0].volume"), std::string::npos)
        << disk;
  for (const char* net : {"network=", "network=../lan", "network=a/b"})
    EXPECT_NE(refusal(json{{"name", "a"}, {"nets", {net}}}, tenant()).find("nets[0]"), std::string::npos) << net;
}

}  // namespace
}  // namespace strata::control
