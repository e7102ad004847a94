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

namespace {

Operation::State stateNamed(const std::string& name) {
  if (name == "succeeded") return Operation::State::Succeeded;
  if (name == "running") return Operation::State::Running;
  return Operation::State::Failed;
}

}  // namespace

Operations::Operations(Store& store, std::function<void(const Operation&)> onFinished)
    : store_(store), onFinished_(std::move(onFinished)) {}

Operations::~Operations() {
  std::unique_lock lock(mutex_);
  auto running = std::move(running_);
  lock.unlock();  // the threads take it as they end
  for (auto& [id, entry] : running) entry.thread.join();
}

std::string Operations::start(const std::string& kind, const std::string& target, const std::string& tenant,
                              Work work) {
  int64_t number = store_.addOperation(kind, target, tenant);
  std::string id = fmt::format("op-{}", number);
  std::lock_guard lock(mutex_);
  joinFinished();
  Running& entry = running_[id];
  entry.operation = Operation{id, kind, target, tenant};
  entry.thread = std::thread([this, id, number, work = std::move(work)] {
    auto outcome = work([&](uint64_t done, uint64_t total) {
      update(id, [&](Operation& operation) { operation.done = done, operation.total = total; });
    });
    Operation finished;
    update(id, [&](Operation& operation) {
      operation.state = outcome ? Operation::State::Succeeded : Operation::State::Failed;
      if (!outcome) operation.error = outcome.error().message;
      else operation.done = operation.total;
      finished = operation;
    });
    store_.finishOperation({number, finished.kind, finished.target, finished.tenant,
                            operationStateName(finished.state), finished.done, finished.total, finished.error});
    onFinished_(finished);
    std::lock_guard lock(mutex_);
    if (auto found = running_.find(id); found != running_.end()) found->second.finished = true;
  });
  return id;
}

std::optional<Operation> Operations::find(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (auto found = running_.find(id); found != running_.end() && !found->second.finished)
      return found->second.operation;
  }
  // "op-" and 1-18 digits (what an int64 always holds); anything else names no operation.
  if (id.rfind("op-", 0) != 0 || id.size() == 3 || id.size() > 21 ||
      id.find_first_not_of("0123456789", 3) != std::string::npos)
    return std::nullopt;
  auto record = store_.operation(std::stoll(id.substr(3)));
  if (!record) return std::nullopt;
  return Operation{id, record->kind, record->target, record->tenant, stateNamed(record->state), record->done,
                   record->total, record->error};
}

void Operations::update(const std::string& id, const std::function<void(Operation&)>& change) {
  std::lock_guard lock(mutex_);
  change(running_.at(id).operation);
}

void Operations::joinFinished() {
  for (auto entry = running_.begin(); entry != running_.end();) {
    if (!entry->second.finished) {
      ++entry;
      continue;
    }
    entry->second.thread.join();
    entry = running_.erase(entry);
  }
}

}  // namespace strata::control
