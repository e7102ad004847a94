#include "storage/volume/range_lock.h"

#include <algorithm>

namespace strata::storage::volume {

RangeLock::Ticket RangeLock::acquire(uint64_t lo, uint64_t hi, std::function<void(Ticket)> granted) {
  Ticket ticket = nextTicket_++;
  bool blocked = std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.lo < hi && lo < e.hi; });
  entries_.push_back({ticket, lo, hi, !blocked, blocked ? std::move(granted) : nullptr});
  if (!blocked) granted(ticket);
  return ticket;
}

void RangeLock::release(Ticket ticket) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.ticket == ticket; });
  if (it == entries_.end()) return;
  entries_.erase(it);
  grantWaiting();
}

void RangeLock::grantWaiting() {
  // Grants run callbacks that may acquire or release again: loop here instead
  // of recursing, so a long queue never deepens the stack.
  if (granting_) {
    regrant_ = true;
    return;
  }
  granting_ = true;
  do {
    regrant_ = false;
    std::vector<std::pair<std::function<void(Ticket)>, Ticket>> ready;
    for (size_t i = 0; i < entries_.size(); ++i) {
      Entry& e = entries_[i];
      if (e.held) continue;
      bool blocked = false;
      for (size_t j = 0; j < i && !blocked; ++j) blocked = entries_[j].lo < e.hi && e.lo < entries_[j].hi;
      if (blocked) continue;
      e.held = true;
      ready.emplace_back(std::move(e.granted), e.ticket);
      e.granted = nullptr;
    }
    for (auto& [run, ticket] : ready) run(ticket);
  } while (regrant_);
  granting_ = false;
}

}  // namespace strata::storage::volume
