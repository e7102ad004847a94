// The control API's snapshot route: PUT /vm/snapshot {"dir": "...", "resume": true}
// pauses the VM, writes DIR/state and DIR/memory (what `strata run --restore DIR`
// resumes) and lets it run on unless "resume" is false.
#pragma once

#include "vmm/api_server.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

void addSnapshotRoutes(ApiRouter& router, VmControl& control);

}  // namespace strata::vmm
