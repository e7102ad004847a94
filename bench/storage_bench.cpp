// storage_bench: throughput and IOPS of strata's block devices in one run:
// a raw file, a qcow2 (and the same qcow2 through `qemu-img bench`), and
// linear, striped, mirror, RAID 5, RAID 10 and thin volumes, with ratios
// against raw and qemu-img; then striped read scaling over 1, 2 and 4 PVs
// with O_DIRECT, and the RAID 5 rebuild rate. See bench/README.md.
//
// Usage: storage_bench [--dir DIR] [--size-mib N] [--ops N] [--direct]
//                      [--scaling-mib N] [--rebuild-mib N] [--skip-volumes]
//                      [--only table|scaling|rebuild] [--repeat N] [--throttle-mbps N]
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "base/event_loop.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/volume_disk.h"
#include "storage_bench_loops.h"
#include "storage_bench_run.h"
#include "storage_bench_volumes.h"

namespace strata::bench {
namespace {

using storage::volume::VolumeType;

struct Options {
  std::string parentDir = std::filesystem::temp_directory_path();
  uint64_t sizeMiB = 1024;
  uint64_t ops = 100000;
  bool direct = false;
  uint64_t scalingMiB = 512;
  uint64_t rebuildMiB = 512;
  bool volumes = true;
  unsigned repeats = 3;       // median of this many runs per workload
  unsigned imageRepeats = 7;  // rounds of the interleaved raw / qcow2 / qemu-img rows
  uint64_t throttleMbps = 0;  // scaling section on throttled loop devices
  std::string only;  // "", "table", "scaling" or "rebuild"
  bool runs(const char* section) const { return only.empty() || only == section; }
};

// A private directory under --dir, removed with everything in it on every exit path.
class BenchDir {
 public:
  explicit BenchDir(const std::string& parent) {
    std::string templ = parent + "/strata-storage-bench-XXXXXX";
    if (::mkdtemp(templ.data())) path_ = templ;
  }
  ~BenchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  return 1;
}

// One row of a table: a value per workload (0 = not measured) and a note;
// ratios, when given, replace value / reference (0 = none).
struct Row {
  std::string label;
  std::vector<double> values;
  std::string note;
  std::vector<double> ratios = {};
};

void printTable(const std::vector<Workload>& workloads, const std::vector<Row>& rows, const Row* reference,
                const std::string& referenceName) {
  std::printf("%-22s", "");
  for (const auto& w : workloads) std::printf(" %18s", w.name.c_str());
  std::printf("\n%-22s", "");
  for (const auto& w : workloads)
    std::printf(" %18s", fmt::format("{} vs {}", reportsMiBPerSecond(w.blockSize) ? "MiB/s" : "IOPS", referenceName).c_str());
  std::printf("\n");
  for (const auto& row : rows) {
    std::printf("%-22s", row.label.c_str());
    for (size_t i = 0; i < workloads.size(); ++i) {
      double v = row.values[i], ref = reference ? reference->values[i] : 0;
      double ratio = !row.ratios.empty() ? row.ratios[i] : ref > 0 ? v / ref : 0;
      if (v <= 0)
        std::printf(" %18s", "n/a");
      else if (ratio > 0)
        std::printf(" %18s", fmt::format("{:.0f} {:5.2f}x", v, ratio).c_str());
      else
        std::printf(" %18s", fmt::format("{:.0f}      ", v).c_str());
    }
    std::printf("%s%s\n", row.note.empty() ? "" : "  ", row.note.c_str());
  }
}

// The median of `repeats` runs of one workload (0 when a run failed).
double measureMedian(storage::BlockDevice& device, EventLoop& loop, const Workload& w, unsigned repeats,
                     const std::function<void()>& afterSubmit = {}) {
  std::vector<double> values;
  for (unsigned r = 0; r < repeats; ++r) {
    Measured m = runWorkload(device, loop, w, afterSubmit);
    if (!m.valid()) return 0;
    values.push_back(m.headline());
  }
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::vector<double> measureAll(storage::BlockDevice& device, EventLoop& loop, const std::vector<Workload>& workloads,
                               unsigned repeats) {
  std::vector<double> values;
  for (const auto& w : workloads) values.push_back(measureMedian(device, loop, w, repeats));
  return values;
}

Result<std::unique_ptr<storage::DiskImage>> createImage(const std::string& path, storage::ImageFormat format,
                                                       uint64_t size, bool direct, EventLoop& loop) {
  storage::CreateOptions options;
  options.format = format;
  options.size = size;
  if (auto created = storage::createImage(path, options); !created) return created.error();
  auto image = storage::openDiskImage(path, {.direct = direct}, loop);
  if (!image) return image.error();
  if (!fillDevice(**image, loop)) return Error{path + ": filling failed"};
  return image;
}

void removeFiles(const std::vector<std::string>& paths) {
  std::error_code ec;
  for (const auto& p : paths) std::filesystem::remove(p, ec);
}

// The first three rows: a raw file, a qcow2 through strata and the same qcow2
// through `qemu-img bench`. They take turns on every workload, the order
// rotating each round (raw/qcow2/qemu, qcow2/qemu/raw, ...), so load from
// elsewhere on this shared machine falls on all three alike instead of on
// whichever ran during a burst; each cell is the median of its rounds. Both
// files start from the same page-cache state (settlePageCache). strata's qcow2
// is open only while it is measured, so qemu-img never shares it with a
// writer; each open starts with cold L2 tables, as a VM's first requests do.
int measureImageRows(const Options& o, const std::string& dir, EventLoop& loop, const std::vector<Workload>& workloads,
                     std::vector<Row>& rows, std::vector<double>& qcow2VsQemu, std::vector<std::string>& spreads) {
  const uint64_t size = o.sizeMiB << 20;
  const std::string rawPath = dir + "/bench.raw", qcow2Path = dir + "/bench.qcow2";
  auto raw = createImage(rawPath, storage::ImageFormat::Raw, size, o.direct, loop);
  if (!raw) return fail(raw.error().message);
  {
    auto qcow2 = createImage(qcow2Path, storage::ImageFormat::Qcow2, size, o.direct, loop);
    if (!qcow2) return fail(qcow2.error().message);
    if (!o.direct && !settlePageCache({rawPath, qcow2Path}))
      return fail("cannot evict and re-read the image files");
  }
  auto measureQcow2 = [&](const Workload& w) {
    auto image = storage::openDiskImage(qcow2Path, {.direct = o.direct}, loop);
    return image ? runWorkload(**image, loop, w) : Measured{};
  };
  const char* names[] = {"raw", "qcow2", "qemu-img"};
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  };
  Row rawRow{"raw file", {}, ""}, qcow2Row{"qcow2 file", {}, ""}, qemuRow{"qemu-img bench qcow2", {}, "(sequential only)"};
  for (const auto& w : workloads) {
    // samples[target][round]; 0 marks a failed run (the whole cell then shows n/a).
    std::vector<double> samples[3];
    for (unsigned round = 0; round < o.imageRepeats; ++round) {
      for (unsigned k = 0; k < 3; ++k) {
        const unsigned target = (round + k) % 3;
        if (target == 2 && w.random) continue;  // qemu-img bench has no random pattern
        Measured m = target == 0 ? runWorkload(**raw, loop, w)
                     : target == 1 ? measureQcow2(w)
                                   : qemuImgBench(qcow2Path, "qcow2", w, o.direct);
        samples[target].push_back(m.valid() ? m.headline() : 0);
      }
    }
    auto complete = [&](unsigned target) {
      return !samples[target].empty() &&
             std::find(samples[target].begin(), samples[target].end(), 0.0) == samples[target].end();
    };
    // Ratios of runs from the same round (a few seconds apart) cancel most of
    // the machine's drift; their median is what the ratio columns show.
    auto pairedRatio = [&](unsigned target, unsigned reference) {
      if (!complete(target) || !complete(reference)) return 0.0;
      std::vector<double> ratios;
      for (size_t r = 0; r < samples[target].size(); ++r) ratios.push_back(samples[target][r] / samples[reference][r]);
      return median(ratios);
    };
    Row* out[] = {&rawRow, &qcow2Row, &qemuRow};
    std::string spread = fmt::format("  {:<18} min..max of {} rounds:", w.name, o.imageRepeats);
    for (unsigned target = 0; target < 3; ++target) {
      out[target]->values.push_back(complete(target) ? median(samples[target]) : 0);
      out[target]->ratios.push_back(pairedRatio(target, 0));
      if (!complete(target)) continue;
      auto [low, high] = std::minmax_element(samples[target].begin(), samples[target].end());
      spread += fmt::format("  {} {:.0f}..{:.0f}", names[target], *low, *high);
    }
    qcow2VsQemu.push_back(pairedRatio(1, 2));
    spreads.push_back(spread);
    std::fprintf(stderr, "measured %s on raw, qcow2 and qemu-img\n", w.name.c_str());
  }
  rows.push_back(rawRow);
  rows.push_back(qcow2Row);
  rows.push_back(qemuRow);
  removeFiles({rawPath, qcow2Path});
  spreads.insert(spreads.begin(), "Raw, qcow2 and qemu-img rows: interleaved rounds (order rotating); values are "
                                  "medians, their ratios medians of same-round ratios. Spread:");
  return 0;
}

// Section 1: every kind of disk under the same workloads, ratios against raw.
int mainTable(const Options& o, const std::string& dir, EventLoop& loop) {
  const uint64_t size = o.sizeMiB << 20;
  const uint64_t seqMiB = std::max<uint64_t>(o.sizeMiB / 2, 16);
  const std::vector<Workload> workloads = {
      {"seq write 1M QD4", true, false, 1 << 20, 4, seqMiB},   {"seq read 1M QD4", false, false, 1 << 20, 4, seqMiB},
      {"seq write 4K QD32", true, false, 4096, 32, o.ops},     {"seq read 4K QD32", false, false, 4096, 32, o.ops},
      {"rand write 4K QD32", true, true, 4096, 32, o.ops},     {"rand read 4K QD32", false, true, 4096, 32, o.ops},
  };
  std::vector<Row> rows;
  std::vector<double> qcow2VsQemu;
  std::vector<std::string> spreads;
  if (int rc = measureImageRows(o, dir, loop, workloads, rows, qcow2VsQemu, spreads); rc != 0) return rc;

  if (o.volumes) {
    const std::vector<VolumeLayout> layouts = {
        {"linear (1 PV)", VolumeType::Linear, 1, 0, 2},         {"striped x2 (2 PVs)", VolumeType::Striped, 2, 2, 2},
        {"striped x4 (4 PVs)", VolumeType::Striped, 4, 4, 2},   {"mirror 2-way (2 PVs)", VolumeType::Mirror, 2, 0, 2},
        {"raid5 3+1 (4 PVs)", VolumeType::Raid5, 4, 3, 2},      {"raid10 2x2 (4 PVs)", VolumeType::Raid10, 4, 2, 2},
        {"thin (1 PV)", VolumeType::Thin, 1, 0, 2},
    };
    int n = 0;
    for (const auto& layout : layouts) {
      std::string poolName = fmt::format("bench{}", n++);
      auto created = createPoolVolume(dir, poolName, layout, size, loop);
      if (!created) return fail(layout.label + ": " + created.error().message);
      {
        // Exactly how `strata run --disk pool:NAME/vol` opens it.
        auto device = storage::volume::openVolumeDisk(created->spec, {.direct = o.direct}, loop);
        if (!device) return fail(created->spec + ": " + device.error().message);
        if (!fillDevice(**device, loop)) return fail(created->spec + ": filling failed");
        // The same page-cache state as the raw file's (see settlePageCache).
        if (!o.direct && !settlePageCache(created->files))
          return fail(created->spec + ": cannot evict and re-read the PV files");
        rows.push_back({layout.label, measureAll(**device, loop, workloads, o.repeats), ""});
      }
      removeFiles(created->files);
      std::fprintf(stderr, "measured %s\n", layout.label.c_str());
    }
  }

  std::printf("\n== Throughput (MiB/s for 1 MiB requests, IOPS for 4 KiB) and ratio against the raw file ==\n");
  std::printf("%s I/O; %llu MiB per disk, each filled before it is measured; 1 MiB workloads move %llu MiB, "
              "4 KiB workloads run %llu requests\n",
              o.direct ? "O_DIRECT (cache=none)" : "buffered (host page cache, cache=writeback)",
              static_cast<unsigned long long>(o.sizeMiB), static_cast<unsigned long long>(seqMiB),
              static_cast<unsigned long long>(o.ops));
  printTable(workloads, rows, &rows[0], "raw");
  for (const auto& line : spreads) std::printf("%s\n", line.c_str());
  // strata's qcow2 against qemu-img bench on the same image.
  std::printf("%-22s", "qcow2 / qemu-img bench");
  for (double r : qcow2VsQemu) std::printf(" %18s", r > 0 ? fmt::format("{:.2f}x", r).c_str() : "n/a");
  std::printf("  (>= 1.00x is the target)\n");
  std::fflush(stdout);
  return 0;
}

// Section 2: does reading a striped volume go faster with more PVs? O_DIRECT,
// so the page cache cannot hide the devices; the probe shows whether the legs
// are really in flight at the same time. With --throttle-mbps every PV (and
// the raw baseline) is a loop device limited to that bandwidth (a second run
// of this section, after the one on plain files).
int stripedScaling(const Options& o, uint64_t throttleMbps, const std::string& dir, EventLoop& loop) {
  const uint64_t size = o.scalingMiB << 20;
  // Throttled devices: 512 KiB requests (on this kernel io_uring's 1 MiB O_DIRECT reads at QD1 get only half
  // of a blk-throttle limit, also through `qemu-img bench -i io_uring`), about a second per run on one device.
  const size_t large = throttleMbps ? 512 << 10 : 1 << 20;
  const std::string largeName = throttleMbps ? "512K" : "1M";
  const uint64_t seqOps = throttleMbps ? throttleMbps * 1000000 / large : size / large;
  const uint64_t randOps = throttleMbps ? throttleMbps * 1000000 / 4096 : o.ops / 2;
  const std::vector<Workload> workloads = {
      {"seq read " + largeName + " QD1", false, false, large, 1, seqOps},
      {"seq read " + largeName + " QD8", false, false, large, 8, seqOps},
      {"rand read 4K QD32", false, true, 4096, 32, randOps},
      {"seq write " + largeName + " QD1", true, false, large, 1, seqOps / 2},
  };
  const uint64_t throttleBytes = throttleMbps * 1000000;
  std::unique_ptr<ThrottledLoops> loops;
  std::vector<Row> rows;
  {
    // The baseline: one file (or one throttled device) read directly.
    loops = std::make_unique<ThrottledLoops>(throttleBytes);
    std::string file = dir + "/scaling.raw";
    storage::CreateOptions options;
    options.format = storage::ImageFormat::Raw;
    options.size = size;
    if (auto created = storage::createImage(file, options); !created) return fail(created.error().message);
    std::string path = file;
    if (throttleMbps) {
      auto device = loops->attach(file);
      if (!device) return fail(device.error().message);
      path = *device;
    }
    auto image = storage::openDiskImage(path, {.direct = true, .format = storage::ImageFormat::Raw}, loop);
    if (!image) return fail(image.error().message);
    if (!fillDevice(**image, loop)) return fail(path + ": filling failed");
    rows.push_back({throttleMbps ? "raw (1 device)" : "raw file", measureAll(**image, loop, workloads, o.repeats),
                    ""});
    image->reset();
    loops.reset();
    removeFiles({file});
  }
  for (uint32_t stripes : {1u, 2u, 4u}) {
    VolumeLayout layout{fmt::format("striped x{} ({} PV{})", stripes, stripes, stripes > 1 ? "s" : ""),
                        VolumeType::Striped, stripes, stripes, 2};
    loops = std::make_unique<ThrottledLoops>(throttleBytes);
    PvMapper mapPv;
    if (throttleMbps) mapPv = [&](const std::string& file) { return loops->attach(file); };
    auto created = createPoolVolume(dir, fmt::format("scale{}", stripes), layout, size, loop, mapPv);
    if (!created) return fail(layout.label + ": " + created.error().message);
    {
      auto opened = openWithPool(*created, true, loop);
      if (!opened) return fail(created->spec + ": " + opened.error().message);
      if (!fillDevice(*opened->device, loop)) return fail(created->spec + ": filling failed");
      std::vector<double> values;
      std::string note;
      for (const auto& w : workloads) {
        PvQueueProbe probe(*opened->pool);
        values.push_back(measureMedian(*opened->device, loop, w, o.repeats, [&] { probe.sample(); }));
        if (&w == &workloads[0])
          note = fmt::format("{}: {} of {} PVs busy at once, up to {} requests per PV", w.name, probe.maxBusyPvs(),
                             stripes, probe.maxPerPv());
      }
      rows.push_back({layout.label, values, note});
    }
    loops.reset();
    removeFiles(created->files);
    std::fprintf(stderr, "measured %s\n", layout.label.c_str());
  }
  std::printf("\n== Striped read scaling: O_DIRECT, %llu MiB volumes, 64 KiB stripes, median of %u runs; ratio "
              "against striped x1 ==\n",
              static_cast<unsigned long long>(o.scalingMiB), o.repeats);
  if (throttleMbps)
    std::printf("Every PV (and the raw baseline) is a loop device throttled to %llu MB/s read and write: independent "
                "devices emulated on one disk.\n",
                static_cast<unsigned long long>(throttleMbps));
  else
    std::printf("The PV files share this machine's one disk, so more PVs add parallel requests, not bandwidth "
                "(see --throttle-mbps).\n");
  printTable(workloads, rows, &rows[1], "x1");
  std::fflush(stdout);
  return 0;
}

// Section 3: RAID 5 rebuild through the code behind `strata pool replace`.
int raid5Rebuild(const Options& o, const std::string& dir, EventLoop& loop) {
  constexpr uint32_t kPvs = 4;
  auto measured = measureRaid5Rebuild(dir, kPvs, o.rebuildMiB << 20, loop);
  if (!measured) return fail("raid5 rebuild: " + measured.error().message);
  const auto& r = measured->replace;
  const auto& s = measured->scrub;
  std::printf("\n== RAID 5 rebuild (3 data + parity on %u PV files, %llu MiB volume, page cache dropped first) ==\n",
              kPvs, static_cast<unsigned long long>(o.rebuildMiB));
  std::printf("PV #%u failed and replaced by a new file: %s %.1f MiB in %.2f s = %.1f MB/s of rebuilt data\n", r.pv,
              r.copied ? "copied" : "rebuilt", static_cast<double>(r.bytes) / (1 << 20), r.seconds,
              r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e6 : 0);
  std::printf("  (it read %.1f MiB from the %u surviving PVs: 1 MiB steps, all legs read at once, four steps in flight)\n",
              static_cast<double>(r.bytes) * (kPvs - 1) / (1 << 20), kPvs - 1);
  std::printf("check-only scrub afterwards: %.1f MiB of members checked in %.2f s (%.1f MB/s), parity mismatches %llu%s\n",
              static_cast<double>(s.bytesChecked) / (1 << 20), measured->scrubSeconds,
              measured->scrubSeconds > 0 ? static_cast<double>(s.bytesChecked) / measured->scrubSeconds / 1e6 : 0,
              static_cast<unsigned long long>(s.parityMismatches), s.skipped.empty() ? "" : " (volumes skipped!)");
  return s.parityMismatches == 0 && s.skipped.empty() ? 0 : 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: storage_bench [--dir DIR] [--size-mib N] [--ops N] [--direct] [--scaling-mib N] "
               "[--rebuild-mib N] [--skip-volumes] [--only table|scaling|rebuild]\n"
               "                     [--repeat N] [--throttle-mbps N]\n");
  return 2;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  using namespace strata;
  using namespace strata::bench;
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto number = [&](uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      out = std::strtoull(argv[++i], &end, 10);
      return *end == '\0' && out > 0;
    };
    bool ok = true;
    if (flag == "--dir" && i + 1 < argc) o.parentDir = argv[++i];
    else if (flag == "--size-mib") ok = number(o.sizeMiB);
    else if (flag == "--ops") ok = number(o.ops);
    else if (flag == "--scaling-mib") ok = number(o.scalingMiB);
    else if (flag == "--rebuild-mib") ok = number(o.rebuildMiB);
    else if (flag == "--throttle-mbps") ok = number(o.throttleMbps);
    else if (flag == "--repeat") {
      uint64_t n = 0;
      ok = number(n) && n < 100;
      o.repeats = o.imageRepeats = static_cast<unsigned>(n);
    } else if (flag == "--direct") o.direct = true;
    else if (flag == "--skip-volumes") o.volumes = false;
    else if (flag == "--only" && i + 1 < argc) o.only = argv[++i];
    else ok = false;
    if (!ok) return usage();
  }
  BenchDir dir(o.parentDir);
  if (dir.path().empty()) {
    std::fprintf(stderr, "cannot create a directory in %s\n", o.parentDir.c_str());
    return 1;
  }
  // A private pool registry: the bench's pools never appear in the system's.
  ::setenv("STRATA_POOL_DIR", (dir.path() + "/registry").c_str(), 1);
  installStopHandler();
  auto loop = EventLoop::create();
  if (!loop) return 1;
  if (!o.only.empty() && o.only != "table" && o.only != "scaling" && o.only != "rebuild") return usage();
  int rc = 0;
  if (o.runs("table")) rc = mainTable(o, dir.path(), **loop);
  if (rc == 0 && o.volumes && o.runs("scaling")) rc = stripedScaling(o, 0, dir.path(), **loop);
  if (rc == 0 && o.volumes && o.runs("scaling") && o.throttleMbps)
    rc = stripedScaling(o, o.throttleMbps, dir.path(), **loop);
  if (rc == 0 && o.volumes && o.runs("rebuild")) rc = raid5Rebuild(o, dir.path(), **loop);
  if (stopRequested()) {
    std::fprintf(stderr, "interrupted; temporary files removed\n");
    return 130;
  }
  return rc;
}
