// Clearing a lookup table (a TLB set, the jit's jump cache) by writing only
// the entries in use, told by their key: a clone starts with its server's
// tables, and clearing a clean page would copy it into the clone.
#pragma once

#include <span>

namespace strata::cpu {

template <typename Entry, typename Key>
void clearUsedEntries(std::span<Entry> entries, Key Entry::*key) {
  const Entry empty{};
  for (Entry& entry : entries)
    if (entry.*key != empty.*key) entry = empty;
}

}  // namespace strata::cpu
