# Sv57: five-level walks, superpages at levels 1-4, 57-bit canonical addresses
# (the checks are in common/paging_levels.inc, shared with paging_sv48.S).
#define LEVELS 5
#include "paging_levels.inc"
