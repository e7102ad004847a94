// Qcow2Image: a DiskImage in the qcow2 (version 3) format: sparse, with backing
// files for linked clones.
#pragma once

#include <memory>
#include <string>

#include "base/event_loop.h"
#include "storage/disk_image.h"

namespace strata::storage {

class Qcow2Image {
 public:
  static Result<std::unique_ptr<DiskImage>> open(const std::string& path, const DiskOptions& options,
                                                 EventLoop& loop, detail::ChainContext& chain);
};

}  // namespace strata::storage
