// The live migration routes of the VM API: `PUT /vm/migrate` starts sending
// this VM to a `strata run --incoming` destination, `GET /vm/migrate` reports
// its progress. They own the migration's sender (migration_source.h).
#pragma once

#include "vmm/api_server.h"
#include "vmm/vm_control.h"

namespace strata::vmm {

void addMigrationRoutes(ApiRouter& router, VmControl& control);

}  // namespace strata::vmm
