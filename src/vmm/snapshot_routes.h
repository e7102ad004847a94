// The control API's snapshot route: PUT /vm/snapshot {"dir": "...", "resume": true,
// "compress": false} pauses the VM, writes DIR/state and DIR/memory (or, compressed,
// DIR/memory.zst: what `strata run --restore DIR` resumes), puts an overlay on each
// writable disk image and lets the VM run on unless "resume" is false.
#pragma once

#include "vmm/api_server.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

void addSnapshotRoutes(ApiRouter& router, VmControl& control);

}  // namespace strata::vmm
