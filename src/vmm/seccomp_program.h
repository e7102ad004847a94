// A seccomp-BPF program for x86-64 assembled from an allow-list: the syscalls a
// thread may make, some only with given arguments, everything else answered
// with one default action. Assembling it here takes microseconds where
// libseccomp's compiler took ~1 ms and ~35 page faults per program, on the path
// of every VM's start (bench/README.md, restore start-up round 6).
//
// The program: a syscall of another ABI (its arch not x86-64, or the x32 bit
// set in its number) kills the process; then, per syscall, in the order added,
// a compare of the number and that syscall's rules; then the default action.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "base/result.h"

namespace strata::vmm::seccomp {

// What the kernel does with a syscall (SECCOMP_RET_* values).
uint32_t allowAction();
uint32_t trapAction();               // SIGSYS to the thread, which the sandbox's handler names
uint32_t errnoAction(int error);     // the syscall fails with `error` without running
uint32_t killProcessAction();

// (args[index] & mask) == value, over all 64 bits of the argument.
struct ArgumentCheck {
  unsigned index = 0;
  uint64_t mask = ~uint64_t{0};
  uint64_t value = 0;
};

class ProgramBuilder {
 public:
  // `syscall` answered with `action` whatever its arguments; allowing one twice is harmless.
  // A syscall answered so keeps no argument rules.
  void allow(int syscall) { answer(syscall, allowAction()); }
  void answer(int syscall, uint32_t action);
  // `syscall` answered with `action` when `check` holds; rules are tried in the order added,
  // and a syscall none of whose rules holds gets the default action.
  void answerIf(int syscall, ArgumentCheck check, uint32_t action);
  void allowIf(int syscall, ArgumentCheck check) { answerIf(syscall, check, allowAction()); }

  // The program; an error if two unconditional answers for one syscall differ, or a
  // syscall's rules need a jump farther than classic BPF can make (255 instructions).
  Result<std::vector<sock_filter>> build(uint32_t defaultAction) const;

 private:
  struct Rules {
    int syscall;
    std::optional<uint32_t> always;
    std::vector<std::pair<ArgumentCheck, uint32_t>> when;
    bool conflicting = false;  // two different unconditional answers
  };
  std::vector<Rules> rules_;  // in the order each syscall was first added
  Rules& rulesOf(int syscall);
};

// Installs `program` on the calling thread, on top of any it has; no_new_privs must be set.
Result<void> load(const std::vector<sock_filter>& program);

}  // namespace strata::vmm::seccomp
