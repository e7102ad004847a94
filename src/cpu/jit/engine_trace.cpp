#include "cpu/jit/engine_trace.h"

#include <capstone/capstone.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include "cpu/block_cache.h"

namespace strata::cpu {
namespace {

constexpr const char* kOpNames[] = {
#define STRATA_CPU_OP_NAME(name, handler) #name,
    STRATA_CPU_OPS(STRATA_CPU_OP_NAME)
#undef STRATA_CPU_OP_NAME
};

}  // namespace

Result<std::shared_ptr<EngineTrace>> EngineTrace::open(const std::string& path) {
  csh handle;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &handle) != CS_ERR_OK) return Error{"--engine-trace: capstone has no x86-64"};
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!file.valid()) {
    cs_close(&handle);
    return errnoError(fmt::format("--engine-trace {}", path));
  }
  return std::shared_ptr<EngineTrace>(new EngineTrace(std::move(file), handle));
}

EngineTrace::EngineTrace(UniqueFd file, size_t disassembler) : file_(std::move(file)), disassembler_(disassembler) {}

EngineTrace::~EngineTrace() {
  csh handle = disassembler_;
  cs_close(&handle);
}

void EngineTrace::record(const Block& block, const uint8_t* code, size_t bytes) {
  std::string text = fmt::format("block pa {:#x}: {} guest instructions, {} host bytes at {}\n", block.physicalPc, block.instructionCount, bytes, static_cast<const void*>(code));
  for (uint32_t i = 0; i < block.instructionCount; ++i) {
    const DecodedInsn& insn = block.firstInsn()[i];
    const auto op = static_cast<unsigned>(insn.op);
    text += fmt::format("  guest {:#x}: {:08x} {}\n", block.physicalPc + insn.pcOffset, insn.raw,
                        op < std::size(kOpNames) ? kOpNames[op] : "?");
  }
  std::lock_guard lock(mutex_);
  cs_insn* host = nullptr;
  const size_t count = cs_disasm(disassembler_, code, bytes, reinterpret_cast<uint64_t>(code), 0, &host);
  for (size_t i = 0; i < count; ++i)
    text += fmt::format("  host  {:#x}: {} {}\n", host[i].address, host[i].mnemonic, host[i].op_str);
  if (host != nullptr) cs_free(host, count);
  for (size_t written = 0; written < text.size();) {
    const ssize_t n = ::write(file_.get(), text.data() + written, text.size() - written);
    if (n <= 0) return;  // a full disk ends the trace, not the VM
    written += static_cast<size_t>(n);
  }
}

}  // namespace strata::cpu
