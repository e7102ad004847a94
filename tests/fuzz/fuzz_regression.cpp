// fuzz_regression TARGET PATH...: replays every file under each PATH (a corpus
// directory or a single input) through the named fuzz target, so the committed
// corpus and past crashers run in the ordinary test suite without clang.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_targets.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TARGET PATH... (targets: %s)\n", argv[0], strata::fuzz::targetNames().c_str());
    return 2;
  }
  std::string target = argv[1];
  auto run = strata::fuzz::findTarget(target);
  if (run == nullptr) {
    std::fprintf(stderr, "unknown target '%s' (%s)\n", target.c_str(), strata::fuzz::targetNames().c_str());
    return 2;
  }
  std::vector<std::filesystem::path> inputs;
  for (int i = 2; i < argc; ++i) {
    std::filesystem::path path = argv[i];
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        if (entry.is_regular_file()) inputs.push_back(entry.path());
      }
    } else {
      inputs.push_back(path);
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::fprintf(stderr, "no inputs found\n");
    return 1;
  }
  for (const auto& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(bytes.data(), bytes.size());
  }
  std::printf("%s: %zu inputs replayed\n", target.c_str(), inputs.size());
  return 0;
}
