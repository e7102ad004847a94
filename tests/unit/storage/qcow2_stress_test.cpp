// Many concurrent mixed requests on a linked clone, checked against a model:
// every read must match, and the final image must pass qemu-img check and
// compare. Requests in flight never overlap (a guest's in-flight requests have
// no defined order either), so the model is exact.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/sync_io.h"
#include "storage_test_util.h"

namespace strata::storage {
namespace {

using testing::pattern;
using testing::runCommand;
using testing::TempDir;
using testing::writeFile;

class Qcow2Stress : public ::testing::TestWithParam<uint32_t> {};

TEST_P(Qcow2Stress, ConcurrentMixedRequestsMatchModel) {
  TempDir dir;
  auto loop = std::move(*EventLoop::create());
  constexpr uint64_t kSize = 8 << 20;
  std::vector<uint8_t> model = pattern(kSize, 21);
  writeFile(dir.file("base.raw"), model);
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = kSize;
  create.clusterSize = GetParam();
  create.backingFile = "base.raw";
  create.backingFormat = ImageFormat::Raw;
  std::string path = dir.file("clone.qcow2");
  ASSERT_TRUE(createImage(path, create).ok());
  auto opened = openDiskImage(path, {}, *loop);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto& disk = **opened;

  struct InFlight {
    uint64_t begin, end;
  };
  std::vector<InFlight> inFlight;
  std::mt19937_64 random(GetParam());
  int failures = 0;
  int pending = 0;
  auto overlaps = [&](uint64_t b, uint64_t e) {
    for (const auto& f : inFlight) {
      if (b < f.end && f.begin < e) return true;
    }
    return false;
  };
  auto track = [&](uint64_t b, uint64_t e) {
    inFlight.push_back({b, e});
    ++pending;
  };
  auto untrack = [&](uint64_t b) {
    for (size_t i = 0; i < inFlight.size(); ++i) {
      if (inFlight[i].begin == b) {
        inFlight.erase(inFlight.begin() + static_cast<long>(i));
        break;
      }
    }
    --pending;
  };
  for (int op = 0; op < 3000; ++op) {
    while (pending >= 16) loop->runOnce(-1);
    uint64_t length = 1 + random() % (random() % 4 == 0 ? 400000 : 9000);
    uint64_t offset = random() % (kSize - length);
    int kind = static_cast<int>(random() % 10);
    if (kind == 9) {
      ++pending;
      disk.flush([&](int result) {
        if (result != 0) ++failures;
        --pending;
      });
      continue;
    }
    if (overlaps(offset, offset + length)) continue;
    track(offset, offset + length);
    if (kind < 5) {
      auto data = std::make_shared<std::vector<uint8_t>>(pattern(length, static_cast<uint32_t>(op)));
      std::memcpy(model.data() + offset, data->data(), length);
      disk.writev(offset, {iovec{data->data(), length}}, [&, data, offset](int result) {
        if (result != 0) ++failures;
        untrack(offset);
      });
    } else if (kind < 7) {
      std::memset(model.data() + offset, 0, length);
      disk.writeZeroes(offset, length, [&, offset](int result) {
        if (result != 0) ++failures;
        untrack(offset);
      });
    } else {
      auto buffer = std::make_shared<std::vector<uint8_t>>(length);
      auto expected = std::make_shared<std::vector<uint8_t>>(model.begin() + static_cast<long>(offset),
                                                             model.begin() + static_cast<long>(offset + length));
      disk.readv(offset, {iovec{buffer->data(), length}}, [&, buffer, expected, offset](int result) {
        if (result != 0 || *buffer != *expected) {
          ++failures;
          ADD_FAILURE() << "read at " << offset << " of " << buffer->size() << " bytes differs";
        }
        untrack(offset);
      });
    }
  }
  while (pending > 0) loop->runOnce(-1);
  EXPECT_EQ(failures, 0);
  ASSERT_TRUE(flushSync(disk, *loop).ok());
  std::vector<uint8_t> all(kSize);
  ASSERT_TRUE(readSync(disk, *loop, 0, all.data(), all.size()).ok());
  EXPECT_TRUE(all == model);
  opened->reset();
  auto check = runCommand("qemu-img check " + path);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  writeFile(dir.file("model.raw"), model);
  auto compare = runCommand("qemu-img compare " + path + " " + dir.file("model.raw"));
  EXPECT_EQ(compare.exitCode, 0) << compare.output;
}

INSTANTIATE_TEST_SUITE_P(ClusterSizes, Qcow2Stress, ::testing::Values(512u, 4096u, 65536u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) {
                           return "cluster" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace strata::storage
