#include "control/operations.h"

#include <fmt/core.h>

namespace strata::control {

const char* operationStateName(Operation::State state) {
  switch (state) {
    case Operation::State::Running: return "running";
    case Operation::State::Succeeded: return "succeeded";
    case Operation::State::Failed: return "failed";
  }
  return "failed";
}

Operations::~Operations() {
  for (auto& thread : threads_) thread.join();
}

std::string Operations::start(const std::string& kind, const std::string& target, const std::string& tenant,
                              Work work) {
  std::lock_guard lock(mutex_);
  std::string id = fmt::format("op-{}", nextId_++);
  operations_[id] = Operation{id, kind, target, tenant};
  threads_.emplace_back([this, id, work = std::move(work)] {
    auto outcome = work([&](uint64_t done, uint64_t total) {
      update(id, [&](Operation& operation) { operation.done = done, operation.total = total; });
    });
    update(id, [&](Operation& operation) {
      operation.state = outcome ? Operation::State::Succeeded : Operation::State::Failed;
      if (!outcome) operation.error = outcome.error().message;
      else operation.done = operation.total;
    });
    if (auto finished = find(id)) onFinished_(*finished);
  });
  return id;
}

std::optional<Operation> Operations::find(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto found = operations_.find(id);
  if (found == operations_.end()) return std::nullopt;
  return found->second;
}

void Operations::update(const std::string& id, const std::function<void(Operation&)>& change) {
  std::lock_guard lock(mutex_);
  change(operations_.at(id));
}

}  // namespace strata::control
