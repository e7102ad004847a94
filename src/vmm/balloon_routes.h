// The control API's balloon routes: GET /vm/balloon (target, the driver's
// `actual`, what the host freed and refused, the guest's memory statistics)
// and PUT /vm/balloon {"target_bytes": N}, answered through BalloonControl.
#pragma once

#include "vmm/api_server.h"
#include "vmm/balloon_control.h"

namespace strata::vmm {

void addBalloonRoutes(ApiRouter& router, BalloonControl& balloon);

}  // namespace strata::vmm
