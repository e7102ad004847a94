// Operations: long requests (a template import) run on their own thread; the
// client gets an id at once and polls GET /operations/ID for progress and the
// outcome. Kept in the store: one a restarted daemon finds unfinished is failed
// with the reason, and ids stay unique across restarts.
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
#include "control/store.h"

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
  // onFinished is called when an operation ends, from its thread. Those an earlier
  // daemon left running are failed by recoverInterruptedWork, inside the startup's store checks.
  Operations(Store& store, std::function<void(const Operation&)> onFinished);
  ~Operations();  // waits for the running ones
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  // Runs work on a new thread; its id.
  std::string start(const std::string& kind, const std::string& target, const std::string& tenant, Work work);
  std::optional<Operation> find(const std::string& id);

 private:
  struct Running {
    Operation operation;  // its live progress
    std::thread thread;
    bool finished = false;  // its thread may be joined
  };
  void update(const std::string& id, const std::function<void(Operation&)>& change);
  void joinFinished();  // under mutex_

  Store& store_;
  std::function<void(const Operation&)> onFinished_;
  std::mutex mutex_;
  std::map<std::string, Running> running_;
};

}  // namespace strata::control
