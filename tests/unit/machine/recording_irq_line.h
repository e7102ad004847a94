// RecordingIrqLine: a test IrqLine that remembers every level it is driven to.
#pragma once

#include <mutex>
#include <vector>

#include "machine/mmio_device.h"

namespace strata::machine::testing {

class RecordingIrqLine : public IrqLine {
 public:
  void setLevel(bool asserted) override {
    std::lock_guard lock(mutex_);
    levels_.push_back(asserted);
  }
  bool level() const {
    std::lock_guard lock(mutex_);
    return !levels_.empty() && levels_.back();
  }
  std::vector<bool> levels() const {
    std::lock_guard lock(mutex_);
    return levels_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<bool> levels_;
};

}  // namespace strata::machine::testing
