// EngineTrace: `strata run --engine-trace FILE`. The translator writes each
// block it translates to FILE: the guest instructions (physical pc, encoding,
// decoded operation) and beside them the x86-64 code generated for them,
// disassembled with capstone. Harts share one trace; records never interleave.
// capstone is loaded (dlopen) only when a trace is asked for: linked, its 77k
// relocations cost every starting VM process ~10 ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::cpu {

struct Block;

class EngineTrace {
 public:
  // Opens (truncates) the file now: before the VM's sandbox forbids opening files.
  static Result<std::shared_ptr<EngineTrace>> open(const std::string& path);
  ~EngineTrace();
  EngineTrace(const EngineTrace&) = delete;
  EngineTrace& operator=(const EngineTrace&) = delete;

  // The capstone library a trace loads, e.g. "libcapstone.so.4" (unloaded with the last trace).
  static const char* disassemblerLibrary();

  // One translation: `block`'s guest code and its `bytes` of host code at `code`.
  void record(const Block& block, const uint8_t* code, size_t bytes);

 private:
  struct Capstone;
  EngineTrace(UniqueFd file, std::unique_ptr<Capstone> capstone);
  std::mutex mutex_;
  UniqueFd file_;  // written with write(2) only: what a vCPU thread's sandbox allows
  std::unique_ptr<Capstone> capstone_;
};

}  // namespace strata::cpu
