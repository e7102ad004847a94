// `strata image check` and `strata image info` on the bytes as an image file:
// the refcount walk over every table a crafted qcow2 can point anywhere.
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "storage/image_tools.h"

namespace strata::fuzz {

int imageCheckOneInput(const uint8_t* data, size_t size) {
  quietLogs();
  static const InputFile file("image-check");
  if (!file.write(data, size)) return 0;
  if (auto report = storage::checkImage(file.path())) (void)storage::checkExitCode(*report);
  if (auto info = storage::imageInfo(file.path())) {
    (void)storage::formatInfoText(*info);
    (void)storage::formatInfoJson(*info);
  }
  return 0;
}

}  // namespace strata::fuzz
