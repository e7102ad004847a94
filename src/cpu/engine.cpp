// The engine factory and the run-scope bookkeeping every engine shares.
#include "cpu/engine.h"

#include <charconv>

#include "cpu/hart_core.h"
#include "cpu/interp/interpreter.h"
#include "cpu/jit/jit_engine.h"

namespace strata::cpu {

std::optional<EngineConfig> parseEngineConfig(std::string_view text) {
  if (text == "interp") return EngineConfig{EngineKind::Interpreter};
  if (text == "jit") return EngineConfig{EngineKind::Jit};
  constexpr std::string_view kJitThreshold = "jit,threshold=";
  if (text.substr(0, kJitThreshold.size()) != kJitThreshold) return std::nullopt;
  const std::string_view number = text.substr(kJitThreshold.size());
  uint32_t threshold = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), threshold);
  if (error != std::errc{} || end != number.data() + number.size() || threshold == 0 ||
      threshold > BlockCache::kMaxCountedRuns)  // runs are counted up to that
    return std::nullopt;
  return EngineConfig{EngineKind::Jit, threshold};
}

const char* engineName(EngineKind kind) {
  switch (kind) {
    case EngineKind::Interpreter: return "interp";
    case EngineKind::Jit: return "jit";
  }
  return "?";
}

std::unique_ptr<Engine> makeEngine(const EngineConfig& config) {
  switch (config.kind) {
    case EngineKind::Interpreter: return std::make_unique<interp::InterpreterEngine>();
    case EngineKind::Jit: return std::make_unique<jit::JitEngine>(config.translateThreshold, config.codeCacheBytes, config.trace);
  }
  return nullptr;
}

RunScope::RunScope(HartCore& hart) : hart_(hart), previous_(HartCore::current) {
  hart_.ownerThread.store(std::this_thread::get_id());
  hart_.runState.store(HartCore::RunState::Running);
  HartCore::current = &hart_;
}

RunScope::~RunScope() {
  HartCore::current = previous_;
  hart_.runState.store(HartCore::RunState::Idle);
  hart_.notifyFenceWaiters();
}

}  // namespace strata::cpu
