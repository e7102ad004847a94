// The x86-64 code generator (xbyak): the entry/exit trampolines and one
// function per decoded block. Register roles in generated code: rbx = the
// HartCore (its HartHotState base at offset 0), rbp = instructions retired by
// the blocks chained since instret was last brought up to date (added to it
// before every helper call and at the exit, so helpers see it exact; 64-bit
// arithmetic, since an if-converted branch may take back instructions a
// later exit counts), r12 = the guest virtual pc of the running block's
// first instruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/jit/code_cache.h"
#include "cpu/jit/jit_engine.h"

namespace strata::cpu {
struct Block;
class BlockCache;
}

namespace strata::cpu::jit {

Trampolines emitTrampolines(CodeCache& cache);

// Translates `block` at cache.cursor() and commits it; null if it does not fit.
// Same-page blocks found in `blocks` after its conditional branch may join its translation.
// Appends its direct exits' jumps (not patched yet) to `directExits` if given.
const void* translateBlock(const Block& block, BlockCache& blocks, CodeCache& cache, JitEngine& engine,
                           const Trampolines& trampolines, std::vector<DirectExit>* directExits = nullptr);

}  // namespace strata::cpu::jit
