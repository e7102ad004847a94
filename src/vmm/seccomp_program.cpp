#include "vmm/seccomp_program.h"

#include <asm/unistd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/seccomp.h>

#include <cstddef>

#include <fmt/core.h>

namespace strata::vmm::seccomp {
namespace {

constexpr size_t kLongestJump = 255;  // jt and jf are 8 bits

sock_filter statement(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }

sock_filter jumpIfEqual(uint32_t k, size_t ifTrue, size_t ifFalse) {
  return sock_filter{BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint8_t>(ifTrue), static_cast<uint8_t>(ifFalse), k};
}

sock_filter load(size_t offset) { return statement(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(offset)); }

// Arguments are 64-bit; seccomp_data holds them little-endian, so the low half comes first.
size_t argumentHalfOffset(unsigned index, bool high) { return offsetof(seccomp_data, args) + 8 * index + (high ? 4 : 0); }

// One 32-bit half of a check: the instructions it takes, the last a compare that goes on
// to the next instruction if it holds and `skipIfNot` past it if not.
struct HalfCheck {
  size_t offset;
  uint32_t mask, value;
  size_t length() const { return mask == ~0u ? 2 : 3; }
  void append(std::vector<sock_filter>& out, size_t skipIfNot) const {
    out.push_back(load(offset));
    if (mask != ~0u) out.push_back(statement(BPF_ALU | BPF_AND | BPF_K, mask));
    out.push_back(jumpIfEqual(value, 0, skipIfNot));
  }
};

Result<std::vector<HalfCheck>> halves(const ArgumentCheck& check) {
  if (check.index >= 6) return Error{fmt::format("seccomp: no argument {}", check.index)};
  if ((check.value & ~check.mask) != 0)
    return Error{fmt::format("seccomp: argument {} masked with {:#x} can never be {:#x}", check.index, check.mask, check.value)};
  std::vector<HalfCheck> out;
  for (bool high : {true, false}) {
    const unsigned shift = high ? 32 : 0;
    const auto mask = static_cast<uint32_t>(check.mask >> shift);
    if (mask != 0) out.push_back({argumentHalfOffset(check.index, high), mask, static_cast<uint32_t>(check.value >> shift)});
  }
  return out;
}

}  // namespace

uint32_t allowAction() { return SECCOMP_RET_ALLOW; }
uint32_t trapAction() { return SECCOMP_RET_TRAP; }
uint32_t errnoAction(int error) { return SECCOMP_RET_ERRNO | (static_cast<uint32_t>(error) & SECCOMP_RET_DATA); }
uint32_t killProcessAction() { return SECCOMP_RET_KILL_PROCESS; }

ProgramBuilder::Rules& ProgramBuilder::rulesOf(int syscall) {
  for (auto& rules : rules_)
    if (rules.syscall == syscall) return rules;
  return rules_.emplace_back(Rules{syscall, {}, {}, false});
}

void ProgramBuilder::answer(int syscall, uint32_t action) {
  Rules& rules = rulesOf(syscall);
  if (rules.always && *rules.always != action) rules.conflicting = true;
  rules.always = action;
}

void ProgramBuilder::answerIf(int syscall, ArgumentCheck check, uint32_t action) {
  rulesOf(syscall).when.emplace_back(check, action);
}

Result<std::vector<sock_filter>> ProgramBuilder::build(uint32_t defaultAction) const {
  std::vector<sock_filter> program{
      load(offsetof(seccomp_data, arch)),
      jumpIfEqual(AUDIT_ARCH_X86_64, 1, 0),
      statement(BPF_RET | BPF_K, killProcessAction()),
      load(offsetof(seccomp_data, nr)),
      sock_filter{BPF_JMP | BPF_JGE | BPF_K, 0, 1, __X32_SYSCALL_BIT},
      statement(BPF_RET | BPF_K, killProcessAction()),
  };
  for (const Rules& rules : rules_) {
    if (rules.conflicting) return Error{fmt::format("seccomp: syscall {} given two different answers", rules.syscall)};
    // The syscall's block ends in a return, so a syscall that skips it still has its number loaded.
    std::vector<sock_filter> block;
    if (rules.always) {
      block.push_back(statement(BPF_RET | BPF_K, *rules.always));
    } else {
      for (const auto& [check, action] : rules.when) {
        auto checks = halves(check);
        if (!checks) return checks.error();
        size_t length = 1;  // the return
        for (const HalfCheck& half : *checks) length += half.length();
        size_t done = 0;
        for (const HalfCheck& half : *checks) {
          done += half.length();
          half.append(block, length - done);
        }
        block.push_back(statement(BPF_RET | BPF_K, action));
      }
      block.push_back(statement(BPF_RET | BPF_K, defaultAction));  // no rule held
    }
    if (block.size() > kLongestJump)
      return Error{fmt::format("seccomp: syscall {} has rules too long to skip ({} instructions)", rules.syscall, block.size())};
    program.push_back(jumpIfEqual(static_cast<uint32_t>(rules.syscall), 0, block.size()));
    program.insert(program.end(), block.begin(), block.end());
  }
  program.push_back(statement(BPF_RET | BPF_K, defaultAction));
  if (program.size() > BPF_MAXINSNS) return Error{fmt::format("seccomp: a program of {} instructions", program.size())};
  return program;
}

Result<void> load(const std::vector<sock_filter>& program) {
  sock_fprog loaded{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &loaded) != 0) return errnoError("seccomp(SECCOMP_SET_MODE_FILTER)");
  return {};
}

}  // namespace strata::vmm::seccomp
