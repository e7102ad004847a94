// The interpreter engine: runs a HartCore by looking up decoded blocks for
// the current pc and executing their instructions with a threaded
// (computed-goto) dispatch. Interrupts, timers, fences and stop requests are
// handled only between blocks, driven by HartCore::attention.
#pragma once

#include <cstdint>

#include "cpu/engine.h"

namespace strata::cpu {

struct Block;

namespace interp {

class InterpreterEngine final : public Engine {
 public:
  ExitReason run(HartCore& hart) override;
  uint64_t step(HartCore& hart, uint64_t count) override;
  std::vector<EngineStat> stats() const override { return {}; }
};

struct BlockResult {
  uint32_t retired;
  bool trapped;
};
// Executes at most `limit` (>= 1) instructions of `block`, which starts at
// hart.pc, without chaining into other blocks; leaves pc at the next
// instruction with any trap taken. Other engines use it for the code they do
// not run themselves.
BlockResult executeLimited(HartCore& hart, Block* block, uint32_t limit);
// Executes `block` and the decoded blocks it chains to, as the interpreter's
// own run loop does, until something needs attention, the timer poll is due,
// a trap, or a successor that is not decoded yet.
void executeChained(HartCore& hart, Block* block);

}  // namespace interp
}  // namespace strata::cpu
