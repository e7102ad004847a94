// Engine: how a hart's guest code gets executed (the interpreter in interp/,
// the x86-64 translator in jit/). A Hart owns one Engine, chosen per VM; both
// run from HartCore's decoded-block cache and slow paths, so everything but
// the execution of a block's instructions is shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpu/hart.h"

namespace strata::cpu {

class HartCore;
struct Block;

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs until a stop request or stopSelf(); sleeps in WFI.
  virtual ExitReason run(HartCore& hart) = 0;
  // Executes at most `count` instructions (a trapping instruction counts as one
  // attempt); never sleeps. Returns the number of instructions retired.
  virtual uint64_t step(HartCore& hart, uint64_t count) = 0;
  // Counters for `strata run --stats` (name, value).
  virtual std::vector<EngineStat> stats() const = 0;
  // Makes native code for a cached block ahead of its first run (Hart::prewarm);
  // an engine without translations has nothing to do.
  virtual void pretranslate(HartCore& /*hart*/, Block& /*block*/) {}
  // After the last pretranslate of a prewarm: links what it made.
  virtual void finishPrewarm(HartCore& /*hart*/) {}
};

std::unique_ptr<Engine> makeEngine(const EngineConfig& config);

// Marks `hart` as running on this thread for the scope of a run()/step().
class RunScope {
 public:
  explicit RunScope(HartCore& hart);
  ~RunScope();
  RunScope(const RunScope&) = delete;
  RunScope& operator=(const RunScope&) = delete;

 private:
  HartCore& hart_;
  HartCore* previous_;
};

}  // namespace strata::cpu
