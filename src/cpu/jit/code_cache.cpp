#include "cpu/jit/code_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace strata::cpu::jit {

CodeCache::CodeCache(size_t capacity) : capacity_(capacity) {
  // Reserved, not committed: only the pages translations touch use memory.
  void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (p == MAP_FAILED) {
    std::perror("strata: jit code cache mmap");
    std::abort();  // like operator new: no engine can run without its memory
  }
  base_ = static_cast<uint8_t*>(p);
}

CodeCache::~CodeCache() { ::munmap(base_, capacity_); }

void CodeCache::commit(size_t bytes) {
  used_ += (bytes + 15) & ~size_t{15};
  if (used_ > capacity_) used_ = capacity_;
}

void CodeCache::startFreshPage() {
  constexpr size_t kPage = 4096;
  used_ = std::min(capacity_, (used_ + kPage - 1) & ~(kPage - 1));
}

}  // namespace strata::cpu::jit
