#include "storage/nbd/nbd_export.h"

#include <fmt/core.h>

#include "storage/nbd/nbd_protocol.h"

namespace strata::storage::nbd {

namespace {

Result<AllocationExtent> chainStatus(DiskImage& top, uint64_t offset, uint64_t length) {
  DiskImage* layer = &top;
  while (true) {
    // A backing file shorter than its overlay reads as zeroes past its end.
    if (offset >= layer->sizeBytes()) return AllocationExtent{length, kStateHole | kStateZero};
    uint64_t inLayer = std::min(length, layer->sizeBytes() - offset);
    auto extent = layer->blockStatus(offset, inLayer);
    if (!extent) return extent.error();
    if (extent->length == 0 || extent->length > inLayer) {
      return Error{fmt::format("{}: block status at {} returned an extent of {} bytes for a {}-byte query",
                               layer->path(), offset, extent->length, inLayer)};
    }
    switch (extent->kind) {
      case ExtentKind::Data:
        return AllocationExtent{extent->length, 0};
      case ExtentKind::Zero:
        return AllocationExtent{extent->length, kStateHole | kStateZero};
      case ExtentKind::Unallocated:
        if (layer->backing() == nullptr) return AllocationExtent{extent->length, kStateHole | kStateZero};
        length = extent->length;
        layer = layer->backing();
        break;
    }
  }
}

}  // namespace

BlockStatusSource diskImageBlockStatus(DiskImage& image) {
  return [&image](uint64_t offset, uint64_t length) { return chainStatus(image, offset, length); };
}

}  // namespace strata::storage::nbd
