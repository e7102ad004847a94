// The NBD server against real clients from Debian: nbdinfo and nbdcopy (libnbd)
// and qemu-img / qemu-io (QEMU's NBD client), over UNIX sockets and loopback
// TCP, exporting raw and qcow2 images; and `strata nbd serve` end to end.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <climits>
#include <cstdio>
#include <fstream>

#include "nbd_test_support.h"
#include "storage/disk_image.h"
#include "storage/volume/pool.h"

namespace strata::storage::nbd {
namespace {

using testing::contains;
using testing::haveTool;
using testing::LoopThread;
using testing::pattern;
using testing::run;
using testing::ServeProcess;
using testing::strataBinary;
using testing::TempDir;
using testing::writeFile;

class NbdInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"nbdinfo", "nbdcopy", "qemu-img", "qemu-io"}) {
      if (!haveTool(tool)) GTEST_SKIP() << tool << " is not installed (Debian: libnbd-bin, qemu-utils)";
    }
  }
  // Opens path through openDiskImage and serves it on a UNIX socket and loopback TCP.
  void serve(const std::string& path, bool readOnly = false) {
    DiskOptions options;
    options.readOnly = readOnly;
    auto opened = openDiskImage(path, options, thread.loop());
    ASSERT_TRUE(opened) << opened.error().message;
    image = std::move(*opened);
    NbdExport exported;
    exported.name = "";
    exported.description = path;
    exported.device = image.get();
    exported.readOnly = readOnly;
    exported.blockStatus = diskImageBlockStatus(*image);
    server = std::make_unique<NbdServer>(thread.loop(), std::vector{exported});
    ASSERT_TRUE(server->listenUnix(socketPath));
    auto port = server->listenTcp(0);
    ASSERT_TRUE(port) << port.error().message;
    tcpUri = "nbd://127.0.0.1:" + std::to_string(*port) + "/";
    thread.start();
  }
  // Stops serving, drains and flushes, and closes the image so its file is complete.
  void stopServing() {
    if (!server) return;
    thread.call([&] { server->shutdown(); });
    thread.stop();
    for (int i = 0; !server->idle() && i < 1000; ++i) thread.loop().runOnce(10);
    server.reset();
    if (image && !image->readOnly()) {
      bool done = false;
      image->flush([&](int) { done = true; });
      while (!done) thread.loop().runOnce(100);
    }
    image.reset();
  }
  void TearDown() override { stopServing(); }

  TempDir dir;
  std::string socketPath = dir.file("nbd.sock");
  std::string unixUri = "nbd+unix:///?socket=" + socketPath;
  std::string tcpUri;
  LoopThread thread;
  std::unique_ptr<DiskImage> image;
  std::unique_ptr<NbdServer> server;
};

TEST_F(NbdInterop, NbdinfoDescribesTheExportAndMapsAllocation) {
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 " + disk + " 64M").exitCode, 0);
  ASSERT_EQ(run("qemu-io -c 'write -P 0x5a 1M 1M' " + disk).exitCode, 0);
  serve(disk);
  auto info = run("nbdinfo '" + unixUri + "'");
  ASSERT_EQ(info.exitCode, 0) << info.output;
  EXPECT_TRUE(contains(info.output, "export-size: 67108864")) << info.output;
  EXPECT_TRUE(contains(info.output, "using structured packets")) << info.output;
  EXPECT_TRUE(contains(info.output, "base:allocation")) << info.output;
  EXPECT_TRUE(contains(info.output, "is_read_only: false")) << info.output;
  EXPECT_TRUE(contains(info.output, "can_flush: true")) << info.output;
  EXPECT_TRUE(contains(info.output, "can_fua: true")) << info.output;
  EXPECT_TRUE(contains(info.output, "can_trim: true")) << info.output;
  EXPECT_TRUE(contains(info.output, "can_zero: true")) << info.output;
  EXPECT_TRUE(contains(info.output, "can_multi_conn: true")) << info.output;
  EXPECT_TRUE(contains(info.output, "block_size_maximum: 33554432")) << info.output;

  auto map = run("nbdinfo --map '" + unixUri + "'");
  ASSERT_EQ(map.exitCode, 0) << map.output;
  // The qcow2's only allocated cluster range, between holes.
  EXPECT_TRUE(contains(map.output, "         0     1048576    3  hole,zero")) << map.output;
  EXPECT_TRUE(contains(map.output, "   1048576     1048576    0  data")) << map.output;
  EXPECT_TRUE(contains(map.output, "   2097152    65011712    3  hole,zero")) << map.output;

  auto list = run("nbdinfo --list '" + unixUri + "'");
  EXPECT_EQ(list.exitCode, 0) << list.output;
  EXPECT_TRUE(contains(list.output, "description: " + disk)) << list.output;
}

TEST_F(NbdInterop, NbdcopyBothWaysIsByteExact) {
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 -o cluster_size=65536 " + disk + " 24M").exitCode, 0);
  auto data = pattern(24 << 20, 11);
  std::fill(data.begin() + (4 << 20), data.begin() + (9 << 20), 0);  // a zero run nbdcopy may write as zeroes
  writeFile(dir.file("source.raw"), data);
  serve(disk);
  auto in = run("nbdcopy --connections=4 --requests=16 " + dir.file("source.raw") + " '" + unixUri + "'");
  ASSERT_EQ(in.exitCode, 0) << in.output;
  auto out = run("nbdcopy '" + tcpUri + "' " + dir.file("copy.raw"));
  ASSERT_EQ(out.exitCode, 0) << out.output;
  EXPECT_EQ(run("cmp " + dir.file("source.raw") + " " + dir.file("copy.raw")).exitCode, 0);
  stopServing();
  auto check = run("qemu-img check " + disk);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  auto compare = run("qemu-img compare -f qcow2 -F raw " + disk + " " + dir.file("source.raw"));
  EXPECT_EQ(compare.exitCode, 0) << compare.output;
}

TEST_F(NbdInterop, QemuImgInfoConvertAndCompareOverUnixAndTcp) {
  std::string disk = dir.file("disk.raw");
  auto data = pattern(8 << 20, 12);
  writeFile(disk, data);
  serve(disk, true);
  auto info = run("qemu-img info '" + unixUri + "'");
  ASSERT_EQ(info.exitCode, 0) << info.output;
  EXPECT_TRUE(contains(info.output, "virtual size: 8 MiB (8388608 bytes)")) << info.output;
  auto convert = run("qemu-img convert -f raw -O qcow2 '" + tcpUri + "' " + dir.file("copy.qcow2"));
  ASSERT_EQ(convert.exitCode, 0) << convert.output;
  auto compareFile = run("qemu-img compare -f qcow2 -F raw " + dir.file("copy.qcow2") + " " + disk);
  EXPECT_EQ(compareFile.exitCode, 0) << compareFile.output;
  auto compareUnix = run("qemu-img compare -f raw -F raw '" + unixUri + "' " + disk);
  EXPECT_EQ(compareUnix.exitCode, 0) << compareUnix.output;
  // A difference is seen through the export too.
  data[5000] ^= 1;  // reported at its 512-byte sector, 4608
  writeFile(dir.file("different.raw"), data);
  auto differs = run("qemu-img compare -f raw -F raw '" + tcpUri + "' " + dir.file("different.raw"));
  EXPECT_EQ(differs.exitCode, 1) << differs.output;
  EXPECT_TRUE(contains(differs.output, "Content mismatch at offset 4608")) << differs.output;
}

TEST_F(NbdInterop, QemuIoWritesThenReadsBack) {
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 " + disk + " 16M").exitCode, 0);
  serve(disk);
  auto written = run("qemu-io -f raw -c 'write -P 0x5a 1M 192k' -c 'write -P 0x33 100 7' -c 'write -z 1088k 64k' "
                     "-c 'write -f -P 0x44 2M 4k' -c 'flush' '" + tcpUri + "'");
  ASSERT_EQ(written.exitCode, 0) << written.output;
  EXPECT_FALSE(contains(written.output, "error")) << written.output;
  auto readBack = run("qemu-io -f raw -c 'read -P 0x5a 1M 64k' -c 'read -P 0 1088k 64k' -c 'read -P 0x5a 1152k 64k' "
                      "-c 'read -P 0x33 100 7' -c 'read -P 0 0 100' -c 'read -P 0x44 2M 4k' '" + unixUri + "'");
  ASSERT_EQ(readBack.exitCode, 0) << readBack.output;
  EXPECT_FALSE(contains(readBack.output, "Pattern verification failed")) << readBack.output;
  EXPECT_TRUE(contains(readBack.output, "read 7/7 bytes at offset 100")) << readBack.output;
  stopServing();
  // What the clients wrote is in the image, as QEMU itself reads it.
  auto direct = run("qemu-io -f qcow2 -c 'read -P 0x5a 1M 64k' -c 'read -P 0 1088k 64k' -c 'read -P 0x33 100 7' "
                    "-c 'read -P 0x44 2M 4k' " + disk);
  EXPECT_EQ(direct.exitCode, 0) << direct.output;
  EXPECT_FALSE(contains(direct.output, "Pattern verification failed")) << direct.output;
  EXPECT_EQ(run("qemu-img check " + disk).exitCode, 0);
}

TEST_F(NbdInterop, ReadOnlyExportRefusesQemuIoWrites) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(1 << 20, 0x11));
  serve(disk, true);
  auto info = run("nbdinfo '" + unixUri + "'");
  EXPECT_TRUE(contains(info.output, "is_read_only: true")) << info.output;
  auto write = run("qemu-io -f raw -c 'write -P 0x22 0 4k' '" + unixUri + "'");
  EXPECT_TRUE(contains(write.output, "ermission denied") || contains(write.output, "read-only") ||
              contains(write.output, "not permitted"))
      << write.output;
  auto copyIn = run("nbdcopy " + disk + " '" + unixUri + "'");
  EXPECT_NE(copyIn.exitCode, 0) << copyIn.output;
  auto readBack = run("qemu-io -f raw -c 'read -P 0x11 0 1M' '" + tcpUri + "'");
  EXPECT_FALSE(contains(readBack.output, "Pattern verification failed")) << readBack.output;
}

// A client must not turn a probed raw export into a qcow2 image whose backing
// file is a host file, for the next open to follow (QEMU's rule for probed raw).
TEST_F(NbdInterop, ProbedRawExportRefusesAQcow2HeaderFromQemuIo) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(1 << 20, 0x11));
  writeFile(dir.file("secret.raw"), pattern(1 << 20, 5));
  std::string header = dir.file("header.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 -b " + dir.file("secret.raw") + " -F raw " + header + " 1M").exitCode, 0);
  serve(disk);
  auto planted = run("qemu-io -f raw -c 'write -s " + header + " 0 512' '" + unixUri + "'");
  EXPECT_TRUE(contains(planted.output, "Operation not permitted")) << planted.output;
  auto ordinary = run("qemu-io -f raw -c 'write -P 0x22 0 512' '" + unixUri + "'");
  EXPECT_TRUE(contains(ordinary.output, "wrote 512/512 bytes at offset 0")) << ordinary.output;
  stopServing();
  auto file = storage::testing::readFile(disk);
  ASSERT_EQ(file.size(), 1u << 20);
  EXPECT_EQ(std::vector<uint8_t>(file.begin(), file.begin() + 512), std::vector<uint8_t>(512, 0x22));
  EXPECT_EQ(std::vector<uint8_t>(file.begin() + 512, file.end()), std::vector<uint8_t>((1 << 20) - 512, 0x11));
}

// ---- `strata nbd serve`, the real binary built next to this test ----------

TEST_F(NbdInterop, StrataNbdServeEndToEnd) {
  std::string strata = strataBinary();
  if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 " + disk + " 16M").exitCode, 0);
  auto data = pattern(16 << 20, 13);
  writeFile(dir.file("source.raw"), data);
  {
    ServeProcess serve(strata, {"--socket", socketPath, "--name", "vm1", disk});
    ASSERT_EQ(serve.uri(), "nbd+unix:///vm1?socket=" + socketPath);
    auto copy = run("nbdcopy " + dir.file("source.raw") + " '" + serve.uri() + "'");
    ASSERT_EQ(copy.exitCode, 0) << copy.output;
    auto compare = run("qemu-img compare -f raw -F raw '" + serve.uri() + "' " + dir.file("source.raw"));
    EXPECT_EQ(compare.exitCode, 0) << compare.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(socketPath));  // removed on shutdown
  auto check = run("qemu-img check " + disk);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  EXPECT_EQ(run("qemu-img compare -f qcow2 -F raw " + disk + " " + dir.file("source.raw")).exitCode, 0);

  {  // read-only over TCP on a port the kernel picks
    ServeProcess serve(strata, {"--port", "0", "--read-only", disk});
    ASSERT_EQ(serve.uri().rfind("nbd://127.0.0.1:", 0), 0u) << serve.uri();
    auto info = run("nbdinfo '" + serve.uri() + "'");
    EXPECT_TRUE(contains(info.output, "is_read_only: true")) << info.output;
    auto compare = run("qemu-img compare -f raw -F raw '" + serve.uri() + "' " + dir.file("source.raw"));
    EXPECT_EQ(compare.exitCode, 0) << compare.output;
    EXPECT_EQ(serve.stop(SIGINT), 0);
  }
  auto missing = run(strata + " nbd serve --socket " + socketPath + " " + dir.file("missing.img"));
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_TRUE(contains(missing.output, "missing.img: No such file or directory")) << missing.output;
  auto both = run(strata + " nbd serve --socket " + socketPath + " --port 1 " + disk);
  EXPECT_NE(both.exitCode, 0);
}

TEST_F(NbdInterop, StrataNbdServeExportsAStripedVolume) {
  std::string strata = strataBinary();
  if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  std::vector<std::string> pvs;
  for (int i = 0; i < 3; ++i) {
    pvs.push_back(dir.file("pv" + std::to_string(i)));
    std::ofstream(pvs.back()).close();
    ASSERT_EQ(::truncate(pvs.back().c_str(), 32 << 20), 0);
  }
  {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop);
    auto pool = volume::Pool::create("tank", pvs, {.extentSize = 1 << 20}, **loop);
    ASSERT_TRUE(pool) << pool.error().message;
    volume::VolumeCreateOptions striped;
    striped.type = volume::VolumeType::Striped;
    striped.sizeBytes = 24 << 20;
    striped.stripes = 3;
    auto created = (*pool)->createVolume("data", striped);
    ASSERT_TRUE(created) << created.error().message;
  }
  auto data = pattern(24 << 20, 14);
  writeFile(dir.file("source.raw"), data);
  std::vector<std::string> arguments{"--socket", socketPath};
  for (const auto& pv : pvs) arguments.insert(arguments.end(), {"--pv", pv});
  arguments.push_back("pool:tank/data");
  {
    ServeProcess serve(strata, arguments);
    ASSERT_EQ(serve.uri(), "nbd+unix:///?socket=" + socketPath);
    auto info = run("nbdinfo '" + serve.uri() + "'");
    EXPECT_TRUE(contains(info.output, "export-size: 25165824")) << info.output;
    auto copy = run("nbdcopy " + dir.file("source.raw") + " '" + serve.uri() + "'");
    ASSERT_EQ(copy.exitCode, 0) << copy.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
  }
  arguments.insert(arguments.begin(), "--read-only");
  ServeProcess again(strata, arguments);  // the data survived the restart
  auto compare = run("qemu-img compare -f raw -F raw '" + again.uri() + "' " + dir.file("source.raw"));
  EXPECT_EQ(compare.exitCode, 0) << compare.output;
  EXPECT_EQ(again.stop(SIGTERM), 0);
}

TEST_F(NbdInterop, StrataNbdServeKeepsAProbedRawExportRawUnlessTheFormatIsNamed) {
  std::string strata = strataBinary();
  if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(1 << 20, 0));
  writeFile(dir.file("secret.raw"), pattern(1 << 20, 6));
  std::string header = dir.file("header.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 -b " + dir.file("secret.raw") + " -F raw " + header + " 1M").exitCode, 0);
  std::string plant = "qemu-io -f raw -c 'write -s " + header + " 0 512' ";
  {
    ServeProcess serve(strata, {"--socket", socketPath, disk}, dir.file("probed.log"));
    auto planted = run(plant + "'" + serve.uri() + "'");
    EXPECT_TRUE(contains(planted.output, "Operation not permitted")) << planted.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
  }
  auto log = run("cat " + dir.file("probed.log")).output;
  EXPECT_TRUE(contains(log, "probed as raw")) << log;
  EXPECT_TRUE(contains(log, "--format raw")) << log;
  EXPECT_EQ(run("cmp -n 512 " + disk + " /dev/zero").exitCode, 0);
  {
    ServeProcess serve(strata, {"--socket", socketPath, "--format", "raw", disk}, dir.file("named.log"));
    auto planted = run(plant + "'" + serve.uri() + "'");
    EXPECT_TRUE(contains(planted.output, "wrote 512/512 bytes at offset 0")) << planted.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
  }
  EXPECT_FALSE(contains(run("cat " + dir.file("named.log")).output, "probed"));
  EXPECT_EQ(run("cmp -n 512 " + disk + " " + header).exitCode, 0);
  auto volumeFormat = run(strata + " nbd serve --socket " + socketPath + " --format raw pool:tank/data");
  EXPECT_NE(volumeFormat.exitCode, 0);
  EXPECT_TRUE(contains(volumeFormat.output, "a pool volume has no format")) << volumeFormat.output;
}

}  // namespace
}  // namespace strata::storage::nbd
