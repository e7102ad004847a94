// Operations: long requests (a template import) run on their own thread; the
// client gets an id at once and polls GET /operations/ID for progress and the
// outcome. Kept in memory only: a restarted daemon drops what was interrupted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"

namespace strata::control {

struct Operation {
  enum class State { Running, Succeeded, Failed };
  std::string id, kind, target;
  std::string tenant;  // whose it is ("" for the admin's); others see it as not existing
  State state = State::Running;
  uint64_t done = 0, total = 0;  // progress, in bytes for an import
  std::string error;
};
const char* operationStateName(Operation::State state);

class Operations {
 public:
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  using Work = std::function<Result<void>(const Progress& progress)>;
  // Called when an operation ends, from its thread.
  explicit Operations(std::function<void(const Operation&)> onFinished) : onFinished_(std::move(onFinished)) {}
  ~Operations();  // waits for the running ones
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  // Runs work on a new thread; its id.
  std::string start(const std::string& kind, const std::string& target, const std::string& tenant, Work work);
  std::optional<Operation> find(const std::string& id);

 private:
  void update(const std::string& id, const std::function<void(Operation&)>& change);

  std::function<void(const Operation&)> onFinished_;
  std::mutex mutex_;
  std::map<std::string, Operation> operations_;
  uint64_t nextId_ = 1;
  std::vector<std::thread> threads_;
};

}  // namespace strata::control
