// storage_bench: throughput and IOPS of strata's block devices, in one run, with
// ratios against a raw file and against `qemu-img bench` on the same qcow2.
// Each workload keeps a fixed queue depth of asynchronous requests in flight
// through the BlockDevice interface, exactly as virtio-blk drives it.
//
// Usage: storage_bench [--dir DIR] [--size-mib N] [--ops N]
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "base/event_loop.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/sync_io.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Workload {
  std::string name;
  bool write;
  bool random;
  size_t blockSize;
  unsigned queueDepth;
  uint64_t operations;
};

struct Measured {
  double seconds = 0;
  double iops() const { return operations / seconds; }
  double mibPerSecond() const { return operations * blockSize / seconds / (1 << 20); }
  uint64_t operations = 0;
  size_t blockSize = 0;
};

// Runs one workload with queueDepth requests in flight. Like `qemu-img bench`,
// the timed run does not include a final flush.
Measured run(storage::BlockDevice& device, EventLoop& loop, const Workload& w) {
  const uint64_t blocks = device.sizeBytes() / w.blockSize;
  std::vector<std::vector<uint8_t>> buffers(w.queueDepth, std::vector<uint8_t>(w.blockSize, 0x5a));
  std::mt19937_64 random(42);
  uint64_t submitted = 0, completed = 0;
  int failures = 0;
  std::function<void(unsigned)> submit = [&](unsigned slot) {
    uint64_t block = w.random ? random() % blocks : submitted % blocks;
    ++submitted;
    std::vector<iovec> iov{{buffers[slot].data(), w.blockSize}};
    auto done = [&, slot](int result) {
      if (result < 0) ++failures;
      ++completed;
      if (submitted < w.operations) submit(slot);
    };
    if (w.write) device.writev(block * w.blockSize, std::move(iov), done);
    else device.readv(block * w.blockSize, std::move(iov), done);
  };
  auto start = Clock::now();
  for (unsigned slot = 0; slot < w.queueDepth && submitted < w.operations; ++slot) submit(slot);
  while (completed < w.operations) loop.runOnce(-1);
  Measured m;
  m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (w.write) (void)storage::flushSync(device, loop);
  m.operations = w.operations;
  m.blockSize = w.blockSize;
  if (failures) std::fprintf(stderr, "warning: %d requests failed in %s\n", failures, w.name.c_str());
  return m;
}

// `qemu-img bench` supports sequential patterns only; its time for the same request count.
double qemuImgBench(const std::string& path, const Workload& w) {
  std::string command = fmt::format("qemu-img bench -f qcow2 -c {} -d {} -s {} {} {} 2>&1", w.operations, w.queueDepth,
                                    w.blockSize, w.write ? "-w" : "", path);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return 0;
  char line[512];
  double seconds = 0;
  while (std::fgets(line, sizeof line, pipe)) std::sscanf(line, "Run completed in %lf seconds", &seconds);
  ::pclose(pipe);
  return seconds;
}

Result<std::unique_ptr<storage::DiskImage>> createAndFill(const std::string& path, storage::ImageFormat format,
                                                         uint64_t size, EventLoop& loop) {
  std::filesystem::remove(path);
  storage::CreateOptions options;
  options.format = format;
  options.size = size;
  if (auto created = storage::createImage(path, options); !created) return created.error();
  auto image = storage::openDiskImage(path, {}, loop);
  if (!image) return image.error();
  // Allocate everything first, so reads measure data rather than holes.
  run(**image, loop, {"fill", true, false, 1 << 20, 4, size >> 20});
  return image;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  using namespace strata;
  using namespace strata::bench;
  std::string dir = std::filesystem::temp_directory_path() / "strata-storage-bench";
  uint64_t sizeMiB = 1024, ops = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--size-mib") sizeMiB = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--ops") ops = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: storage_bench [--dir DIR] [--size-mib N] [--ops N]\n");
      return 2;
    }
  }
  std::filesystem::create_directories(dir);
  auto loop = EventLoop::create();
  if (!loop) return 1;

  const std::vector<Workload> workloads = {
      {"seq write 1M (MiB/s)", true, false, 1 << 20, 4, std::max<uint64_t>(sizeMiB / 2, 16)},
      {"seq read 1M (MiB/s)", false, false, 1 << 20, 4, std::max<uint64_t>(sizeMiB / 2, 16)},
      {"seq write 4K QD32 (IOPS)", true, false, 4096, 32, ops},
      {"seq read 4K QD32 (IOPS)", false, false, 4096, 32, ops},
      {"rand write 4K QD32 (IOPS)", true, true, 4096, 32, ops},
      {"rand read 4K QD32 (IOPS)", false, true, 4096, 32, ops},
  };
  auto value = [](const Workload& w, const Measured& m) { return w.blockSize >= (1 << 20) ? m.mibPerSecond() : m.iops(); };

  std::map<std::string, std::vector<double>> table;  // target -> one value per workload
  std::vector<std::string> targets;
  for (auto [name, format] : {std::pair{"raw", storage::ImageFormat::Raw}, {"qcow2", storage::ImageFormat::Qcow2}}) {
    std::string path = dir + "/bench." + name;
    auto image = createAndFill(path, format, sizeMiB << 20, **loop);
    if (!image) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), image.error().message.c_str());
      return 1;
    }
    targets.push_back(name);
    for (const auto& w : workloads) table[name].push_back(value(w, run(**image, **loop, w)));
    std::fprintf(stderr, "measured %s\n", name);
  }
  // qemu-img bench on the same (now fully allocated) qcow2, sequential patterns only.
  targets.push_back("qemu-img bench qcow2");
  for (const auto& w : workloads) {
    double seconds = w.random ? 0 : qemuImgBench(dir + "/bench.qcow2", w);
    Measured m{seconds, w.operations, w.blockSize};
    table["qemu-img bench qcow2"].push_back(seconds > 0 ? value(w, m) : 0);
  }

  std::printf("%-28s", "workload");
  for (auto& t : targets) std::printf(" %20s", t.c_str());
  std::printf(" %14s %16s\n", "qcow2/raw", "qcow2/qemu-img");
  for (size_t i = 0; i < workloads.size(); ++i) {
    std::printf("%-28s", workloads[i].name.c_str());
    for (auto& t : targets) {
      double v = table[t][i];
      if (v > 0) std::printf(" %20.0f", v);
      else std::printf(" %20s", "n/a");
    }
    double raw = table["raw"][i], qcow = table["qcow2"][i], qemu = table["qemu-img bench qcow2"][i];
    std::printf(" %13.2fx", qcow / raw);
    if (qemu > 0) std::printf(" %15.2fx\n", qcow / qemu);
    else std::printf(" %16s\n", "n/a");
  }
  std::filesystem::remove_all(dir);
  return 0;
}
