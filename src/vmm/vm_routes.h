// The control API's routes for the VM itself — GET /vm, PUT /vm/state,
// GET /vm/stats — answered through VmControl. addApiRoutes registers every
// unit's routes; a new capability adds its own registration there.
#pragma once

#include "vmm/api_server.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

void addVmRoutes(ApiRouter& router, VmControl& control);

// Every route the API serves (what `strata run --api-socket` registers).
void addApiRoutes(ApiRouter& router, VmControl& control);

}  // namespace strata::vmm
