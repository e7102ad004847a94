#include "storage/qcow2_image.h"

namespace strata::storage {

Result<std::unique_ptr<DiskImage>> Qcow2Image::open(const std::string& path, const DiskOptions&, EventLoop&,
                                                    detail::ChainContext&) {
  return Error{path + ": qcow2 images are not supported yet"};
}

}  // namespace strata::storage
