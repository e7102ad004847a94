// Memory overcommit with the real guest and its virtio-balloon driver, watched
// from the host: guest RAM resident in strata (Pss_Shmem of
// /proc/PID/smaps_rollup: the guest RAM memfd is strata's only shared memory)
// falls when the guest drops its page cache (free page reporting) and when the
// balloon is inflated to half the guest's RAM through the control API; the
// guest sees the memory go and come back; a file kept in guest RAM keeps its hash.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "guest_runner.h"

namespace strata::test {
namespace {

// A field of /proc/PID/smaps_rollup in KiB, or -1 when it cannot be read.
long smapsRollupKiB(pid_t pid, const std::string& field) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(rollup, line);)
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  return -1;
}

// The number after "key": in a JSON text, or -1.
long long jsonNumber(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::atoll(json.c_str() + at + key.size() + 3);
}

// The number printed after `marker` in the guest's output (e.g. "AVAIL-X=123"), or -1.
long long guestNumber(const std::string& output, const std::string& marker) {
  size_t at = output.rfind(marker + "=");
  if (at == std::string::npos) return -1;
  return std::atoll(output.c_str() + at + marker.size() + 1);
}

constexpr long kMiB = 1024;  // in KiB

TEST(Balloon, ReportingAndInflationReturnGuestMemoryToTheHost) {
  std::string disk = temporaryPath("balloon-cache.raw");
  auto made = runShell("truncate -s 320M " + disk);
  ASSERT_EQ(made.exitCode, 0) << made.output;
  std::string socket = temporaryPath("balloon-api.sock");

  // Markers are printf'd so the console's echo of the typed line does not hold them.
  // Waits poll the guest's own figures (bounded), never a fixed time.
  const std::string script =
      "avail() { awk '/MemAvailable/{print $2}' /proc/meminfo; }\n"
      "dd if=/dev/urandom of=/tmp/keep bs=1M count=32 2>/dev/null; printf 'HASH%s ' -BEFORE; sha256sum /tmp/keep\n"
      "dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null; printf 'PHASE-%s\\n' CACHED; sleep 2\n"
      "echo 3 > /proc/sys/vm/drop_caches; printf 'PHASE-%s\\n' DROPPED; sleep 20\n"
      "dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null; printf 'AVAIL-%s=%s\\n' FULL $(avail); printf 'PHASE-%s\\n' "
      "INFLATE\n"
      "n=0; while [ $(avail) -gt 300000 ] && [ $n -lt 240 ]; do sleep 1; n=$((n+1)); done; sleep 3\n"
      "printf 'AVAIL-%s=%s\\n' INFLATED $(avail); printf 'PHASE-%s\\n' INFLATED; sleep 2\n"
      "printf 'PHASE-%s\\n' DEFLATE\n"
      "n=0; while [ $(avail) -lt 400000 ] && [ $n -lt 240 ]; do sleep 1; n=$((n+1)); done\n"
      "printf 'AVAIL-%s=%s\\n' DEFLATED $(avail); printf 'PHASE-%s\\n' DEFLATED; sleep 2\n"
      "printf 'HASH%s ' -AFTER; sha256sum /tmp/keep\n"
      "poweroff\n";

  const std::string vm = strataBinary() + " vm balloon --api-socket " + socket + " --json";
  long cached = -1, dropped = -1, beforeInflate = -1, inflated = -1;
  std::string inflatedApi, deflatedApi, setInflate, setDeflate;
  auto seen = [](const std::string& output, const char* phase) {
    return output.find(std::string("PHASE-") + phase) != std::string::npos;
  };
  auto run = runStrata(
      {"--mem", "512M", "--balloon", "0", "--api-socket", socket, "--disk", disk + ",format=raw"}, script,
      std::chrono::seconds(500), [&](pid_t pid, const std::string& output) {
        long shmem = smapsRollupKiB(pid, "Pss_Shmem");
        // Peaks before a drop, lows after one: the host counts pages as the guest touches or frees them.
        if (!seen(output, "DROPPED")) cached = std::max(cached, shmem);
        // Reporting runs on its own time after the drop: keep the lowest figure of that phase.
        bool refilled = output.find("AVAIL-FULL=") != std::string::npos;
        if (seen(output, "DROPPED") && !refilled && (dropped < 0 || shmem < dropped)) dropped = shmem;
        if (refilled && !seen(output, "INFLATED")) beforeInflate = std::max(beforeInflate, shmem);
        if (seen(output, "INFLATE") && setInflate.empty()) setInflate = runShell(vm + " 256M 2>&1").output;
        if (seen(output, "INFLATED") && inflated < 0) {
          inflated = shmem;
          inflatedApi = runShell(vm + " 2>&1").output;
        }
        if (seen(output, "DEFLATE") && setDeflate.empty()) setDeflate = runShell(vm + " 0 2>&1").output;
        if (seen(output, "DEFLATED") && deflatedApi.empty()) deflatedApi = runShell(vm + " 2>&1").output;
      });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  std::cout << "guest RAM resident in strata (KiB): cache full " << cached << ", after drop_caches " << dropped
            << ", before inflating " << beforeInflate << ", balloon at 256 MiB " << inflated << "\n";

  // Free page reporting: most of the 320 MiB of dropped page cache leaves the
  // host, which keeps little more than the guest's kernel and its 32 MiB file.
  ASSERT_GT(cached, 320 * kMiB) << run.output;
  EXPECT_GT(cached - dropped, 240 * kMiB) << "dropping 320 MiB of page cache freed only " << (cached - dropped)
                                          << " KiB on the host\n" << run.output;
  EXPECT_LT(dropped, 128 * kMiB) << run.output;

  // The balloon at half the guest's RAM: the guest gives up its cache, the host holds at most the other half.
  EXPECT_NE(setInflate.find("\"target_bytes\": 268435456"), std::string::npos) << setInflate;
  ASSERT_GT(beforeInflate, 320 * kMiB) << run.output;
  EXPECT_LT(inflated, 256 * kMiB + 16 * kMiB) << run.output;
  EXPECT_EQ(jsonNumber(inflatedApi, "inflated_bytes"), 256ll << 20) << inflatedApi;
  EXPECT_EQ(jsonNumber(inflatedApi, "actual_bytes"), 256ll << 20) << inflatedApi;
  EXPECT_EQ(jsonNumber(inflatedApi, "refused_pfns"), 0) << inflatedApi;
  EXPECT_GT(jsonNumber(inflatedApi, "statistics_updates"), 0) << inflatedApi;
  EXPECT_GT(jsonNumber(inflatedApi, "total_memory"), 400ll << 20) << inflatedApi;
  // What the guest sees: 256 MiB less available memory, then back.
  long long full = guestNumber(run.output, "AVAIL-FULL"), small = guestNumber(run.output, "AVAIL-INFLATED"),
            back = guestNumber(run.output, "AVAIL-DEFLATED");
  EXPECT_LT(small, full - 200 * kMiB) << run.output;
  EXPECT_GT(back, small + 200 * kMiB) << run.output;
  EXPECT_EQ(jsonNumber(deflatedApi, "inflated_bytes"), 0) << deflatedApi;

  // The file kept in guest RAM through all of it.
  size_t before = run.output.find("HASH-BEFORE "), after = run.output.find("HASH-AFTER ");
  ASSERT_NE(before, std::string::npos) << run.output;
  ASSERT_NE(after, std::string::npos) << run.output;
  EXPECT_EQ(run.output.substr(before + 12, 64), run.output.substr(after + 11, 64)) << run.output;
}

// --balloon-auto with a host target no host meets (64G free): the policy
// inflates the idle guest's balloon up to what it can spare (never past max);
// then the guest fills 300 MiB of tmpfs a little at a time and the policy gives
// the memory back as its statistics show the pressure, so every write succeeds.
// With the sandbox on (the default): the I/O loop reads /proc/meminfo through
// an fd opened before it.
TEST(Balloon, AutoPolicyInflatesForTheHostAndDeflatesUnderGuestPressure) {
  std::string socket = temporaryPath("balloon-auto-api.sock");
  const std::string script =
      "avail() { awk '/MemAvailable/{print $2}' /proc/meminfo; }\n"
      "n=0; while [ $(avail) -gt 160000 ] && [ $n -lt 300 ]; do sleep 1; n=$((n+1)); done; sleep 3\n"
      "printf 'AVAIL-%s=%s\\n' SQUEEZED $(avail); printf 'PHASE-%s\\n' SQUEEZED; sleep 3\n"
      "mkdir -p /mnt/fill && mount -t tmpfs -o size=400M none /mnt/fill\n"
      "i=0; while [ $i -lt 30 ]; do dd if=/dev/zero of=/mnt/fill/f$i bs=1M count=10 2>/dev/null || break; "
      "i=$((i+1)); sleep 1; done\n"
      "sleep 3; printf 'FILLED-%s=%s\\n' MIB $(du -sm /mnt/fill | cut -f1); printf 'PHASE-%s\\n' FILLED; sleep 3\n"
      "poweroff\n";
  const std::string vm = strataBinary() + " vm balloon --api-socket " + socket + " --json 2>&1";
  std::string squeezedApi, filledApi;
  auto run = runStrata({"--mem", "512M", "--balloon-auto", "host-free=64G,max=384M", "--api-socket", socket}, script,
                       std::chrono::seconds(500), [&](pid_t, const std::string& output) {
                         if (squeezedApi.empty() && output.find("PHASE-SQUEEZED") != std::string::npos)
                           squeezedApi = runShell(vm).output;
                         if (filledApi.empty() && output.find("PHASE-FILLED") != std::string::npos) filledApi = runShell(vm).output;
                       });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;

  // Inflated for the host: the guest lost most of its memory, to the balloon and no further than max.
  long long squeezedTarget = jsonNumber(squeezedApi, "target_bytes");
  EXPECT_GE(squeezedTarget, 256ll << 20) << squeezedApi;
  EXPECT_LE(squeezedTarget, 384ll << 20) << squeezedApi;
  EXPECT_GE(jsonNumber(squeezedApi, "inflated_bytes"), 256ll << 20) << squeezedApi;
  EXPECT_EQ(jsonNumber(squeezedApi, "host_free_bytes"), 64ll << 30) << squeezedApi;
  EXPECT_TRUE(contains(squeezedApi, R"("last_move": "inflate")"));
  long long squeezed = guestNumber(run.output, "AVAIL-SQUEEZED");
  EXPECT_GT(squeezed, 0) << run.output;
  EXPECT_LT(squeezed, 160 * kMiB) << run.output;

  // Deflated for the guest: all 300 MiB written, the balloon gave back most of it. With the
  // host never at its target, only the guest's pressure can have lowered the target.
  EXPECT_EQ(guestNumber(run.output, "FILLED-MIB"), 300) << run.output;
  long long filledTarget = jsonNumber(filledApi, "target_bytes");
  EXPECT_GE(filledTarget, 0) << filledApi;
  EXPECT_LT(filledTarget, squeezedTarget - (200ll << 20)) << squeezedApi << filledApi;
  std::cout << "balloon target (MiB): squeezed " << (squeezedTarget >> 20) << " (guest available " << squeezed / kMiB
            << " MiB), after 300 MiB of guest tmpfs " << (filledTarget >> 20) << "\n";
}

TEST(Balloon, ControlApiRefusesBadTargets) {
  std::string socket = temporaryPath("balloon-bad-api.sock");
  const std::string vm = strataBinary() + " vm balloon --api-socket " + socket;
  std::string tooBig, badSize;
  auto run = runStrata({"--mem", "128M", "--balloon", "0", "--api-socket", socket},
                       "printf 'PHASE-%s\\n' UP; sleep 4\npoweroff\n", std::chrono::seconds(240),
                       [&](pid_t, const std::string& output) {
                         if (output.find("PHASE-UP") == std::string::npos || !tooBig.empty()) return;
                         tooBig = runShell(vm + " 129M 2>&1").output;
                         badSize = runShell(vm + " lots 2>&1").output;
                       });
  ASSERT_FALSE(run.timedOut) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(contains(tooBig, "more than the guest's")) << tooBig;
  EXPECT_TRUE(contains(badSize, "expected a size")) << badSize;
}

}  // namespace
}  // namespace strata::test
