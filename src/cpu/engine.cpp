// The engine factory and the run-scope bookkeeping every engine shares.
#include "cpu/engine.h"

#include "cpu/hart_core.h"
#include "cpu/interp/interpreter.h"
#include "cpu/jit/jit_engine.h"

namespace strata::cpu {

std::optional<EngineKind> parseEngineKind(std::string_view name) {
  if (name == "interp") return EngineKind::Interpreter;
  if (name == "jit") return EngineKind::Jit;
  return std::nullopt;
}

const char* engineName(EngineKind kind) {
  switch (kind) {
    case EngineKind::Interpreter: return "interp";
    case EngineKind::Jit: return "jit";
  }
  return "?";
}

std::unique_ptr<Engine> makeEngine(EngineKind kind) {
  switch (kind) {
    case EngineKind::Interpreter: return std::make_unique<interp::InterpreterEngine>();
    case EngineKind::Jit: return std::make_unique<jit::JitEngine>();
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
