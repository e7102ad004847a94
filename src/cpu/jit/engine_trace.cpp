#include "cpu/jit/engine_trace.h"

#include <capstone/capstone.h>
#include <dlfcn.h>
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

#define STRATA_STRINGIFY(x) #x
#define STRATA_SONAME(major) "libcapstone.so." STRATA_STRINGIFY(major)
// The library of the header compiled against.
constexpr const char* kCapstoneLibrary = STRATA_SONAME(CS_API_MAJOR);

}  // namespace

// The loaded library: its four entry points and an x86-64 disassembler.
struct EngineTrace::Capstone {
  void* library = nullptr;
  decltype(&cs_open) open = nullptr;
  decltype(&cs_close) close = nullptr;
  decltype(&cs_disasm) disasm = nullptr;
  decltype(&cs_free) free = nullptr;
  csh handle = 0;
  bool opened = false;

  ~Capstone() {
    if (opened) close(&handle);
    if (library) ::dlclose(library);
  }

  static Result<std::unique_ptr<Capstone>> load() {
    auto capstone = std::make_unique<Capstone>();
    capstone->library = ::dlopen(kCapstoneLibrary, RTLD_NOW | RTLD_LOCAL);
    if (!capstone->library) return Error{fmt::format("--engine-trace needs capstone: {}", ::dlerror())};
    auto bind = [&](auto& entry, const char* name) {
      entry = reinterpret_cast<std::remove_reference_t<decltype(entry)>>(::dlsym(capstone->library, name));
      return entry != nullptr;
    };
    if (!bind(capstone->open, "cs_open") || !bind(capstone->close, "cs_close") || !bind(capstone->disasm, "cs_disasm") ||
        !bind(capstone->free, "cs_free"))
      return Error{fmt::format("--engine-trace: {} lacks the cs_* functions", kCapstoneLibrary)};
    if (capstone->open(CS_ARCH_X86, CS_MODE_64, &capstone->handle) != CS_ERR_OK)
      return Error{"--engine-trace: capstone has no x86-64"};
    capstone->opened = true;
    return capstone;
  }
};

Result<std::shared_ptr<EngineTrace>> EngineTrace::open(const std::string& path) {
  auto capstone = Capstone::load();
  if (!capstone) return capstone.error();
  UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!file.valid()) return errnoError(fmt::format("--engine-trace {}", path));
  return std::shared_ptr<EngineTrace>(new EngineTrace(std::move(file), std::move(*capstone)));
}

EngineTrace::EngineTrace(UniqueFd file, std::unique_ptr<Capstone> capstone)
    : file_(std::move(file)), capstone_(std::move(capstone)) {}

EngineTrace::~EngineTrace() = default;

const char* EngineTrace::disassemblerLibrary() { return kCapstoneLibrary; }

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
  const size_t count = capstone_->disasm(capstone_->handle, code, bytes, reinterpret_cast<uint64_t>(code), 0, &host);
  for (size_t i = 0; i < count; ++i)
    text += fmt::format("  host  {:#x}: {} {}\n", host[i].address, host[i].mnemonic, host[i].op_str);
  if (host != nullptr) capstone_->free(host, count);
  for (size_t written = 0; written < text.size();) {
    const ssize_t n = ::write(file_.get(), text.data() + written, text.size() - written);
    if (n <= 0) return;  // a full disk ends the trace, not the VM
    written += static_cast<size_t>(n);
  }
}

}  // namespace strata::cpu
