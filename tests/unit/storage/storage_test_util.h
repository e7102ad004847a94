// Helpers shared by the storage tests: a temporary directory, file contents,
// and running qemu-img / qemu-io for cross-checks.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace strata::storage::testing {

// A crash test's child: forks, runs `work` in the child (which calls `ready()`
// once the parent may start its clock, and never returns; it _exits on
// failure), waits for ready, lets the child run `delayUs` longer, SIGKILLs it
// and returns its wait status, or -1 when it ended before saying ready.
inline int killAfterReady(const std::function<void(const std::function<void()>& ready)>& work, useconds_t delayUs) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    ::close(ready[0]);
    work([&] {
      char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(120);
    });
    ::_exit(121);
  }
  ::close(ready[1]);
  char byte = 0;
  bool saidReady = ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (saidReady) ::usleep(delayUs);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  return saidReady ? status : -1;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "strata-storage-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void writeFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs a shell command; returns its exit status and captures stdout+stderr.
struct CommandResult {
  int exitCode;
  std::string output;
};

inline CommandResult runCommand(const std::string& command) {
  CommandResult result{-1, {}};
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  int status = ::pclose(pipe);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A deterministic pattern that differs per byte and per seed.
inline std::vector<uint8_t> pattern(size_t length, uint32_t seed) {
  std::vector<uint8_t> bytes(length);
  uint32_t state = seed * 2654435761u + 1;
  for (auto& b : bytes) {
    state = state * 1103515245u + 12345u;
    b = static_cast<uint8_t>(state >> 16);
  }
  return bytes;
}

}  // namespace strata::storage::testing
