# Sv48: four-level walks, superpages at levels 1-3, 48-bit canonical addresses
# (the checks are in common/paging_levels.inc, shared with paging_sv57.S).
#define LEVELS 4
#include "paging_levels.inc"
