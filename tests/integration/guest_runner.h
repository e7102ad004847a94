// Runs the real `strata` binary as a child process for integration tests:
// feeds its standard input, captures everything it prints, and kills it if it
// outlives a deadline, so a hung guest fails a test instead of hanging CTest.
#pragma once

#include <gtest/gtest.h>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace strata::test {

struct ProcessResult {
  int exitCode = -1;  // -1 when killed for exceeding the deadline
  bool timedOut = false;
  std::string output;  // stdout and stderr interleaved
};

// Called while the process runs (after each output read, and at least every
// 100 ms) with its pid and the output so far, e.g. to sample /proc/PID.
using WhileRunning = std::function<void(pid_t pid, const std::string& output)>;

// Runs `strata run ARGS...` with `input` on its standard input (closed after).
ProcessResult runStrata(const std::vector<std::string>& args, const std::string& input,
                        std::chrono::seconds deadline = std::chrono::seconds(240), const WhileRunning& whileRunning = {});

// Whether `output` holds `text`; when not, the failure shows both.
::testing::AssertionResult contains(const std::string& output, const std::string& text);

// Guest shell lines that hash `jobs` interleaved slices of 1..last at once (job i
// hashes i, i+jobs, ...) and print "job<i>=<first 16 hex digits of the sum>".
std::string parallelHashCommands(int jobs, int last);
// Whether `output` holds every job's line with the sum the host computes.
::testing::AssertionResult hasParallelHashes(const std::string& output, int jobs, int last);

// Runs a host shell command and returns its output and status.
ProcessResult runShell(const std::string& command);

std::string strataBinary();
std::string defaultGuestFile(const std::string& name);  // out/guest/<name>
// A fresh copy of the default ext4 root disk in a temporary directory.
std::string copyOfRootDisk(const std::string& testName);
std::string temporaryPath(const std::string& name);

// A network namespace with a TAP interface stap0 at 10.77.0.1/24, removed afterwards.
class TapNamespace {
 public:
  TapNamespace();
  ~TapNamespace();
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
  std::string why_;
};

}  // namespace strata::test
