// NodePool: per-request state of a completion, recycled rather than allocated.
// A std::function capturing more than two pointers allocates, and these wrap
// every request on the I/O hot paths, so the callback captures one node pointer
// instead. A completion dropped unrun (at teardown) leaves its node to be freed
// with the pool.
#pragma once

#include <memory>
#include <vector>

namespace strata {

template <typename T>
class NodePool {
 public:
  T* take() {
    if (free_.empty()) return all_.emplace_back(std::make_unique<T>()).get();
    T* node = free_.back();
    free_.pop_back();
    return node;
  }
  // Resets the node (releasing what it holds) and makes it available again.
  void give(T* node) {
    *node = T{};
    free_.push_back(node);
  }

 private:
  std::vector<std::unique_ptr<T>> all_;
  std::vector<T*> free_;
};

}  // namespace strata
