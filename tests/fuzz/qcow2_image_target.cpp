#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "storage/disk_image.h"
#include "storage/sync_io.h"

namespace strata::fuzz {

namespace {

struct Qcow2State {
  Qcow2State() { quietLogs(); }
  std::unique_ptr<EventLoop> loop = std::move(*EventLoop::create());
  InputFile file{"qcow2"};
};

Qcow2State& state() {
  static Qcow2State instance;
  return instance;
}

// Touches what a guest or `strata image` would: a few clusters spread over the
// disk, the allocation map, and (when writable) writes, zeroing, discard, flush.
void exercise(storage::DiskImage& image, EventLoop& loop, bool writable) {
  uint64_t size = image.sizeBytes();
  std::vector<uint8_t> buffer(8192);
  std::vector<uint64_t> offsets{0, 512, 65536, 1 << 20, size / 2, size / 3 * 2, size >= 4096 ? size - 4096 : 0};
  for (uint64_t offset : offsets) {
    if (offset >= size) continue;
    size_t length = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
    (void)storage::readSync(image, loop, offset, buffer.data(), length);
  }
  uint64_t position = 0;
  for (int i = 0; i < 16 && position < size; ++i) {
    auto extent = image.blockStatus(position, size - position);
    if (!extent || extent->length == 0 || extent->length > size - position) break;
    position += extent->length;
  }
  if (!writable) return;
  std::fill(buffer.begin(), buffer.end(), 0xA5);
  for (uint64_t offset : {uint64_t{0}, size / 2, uint64_t{1000}}) {
    if (offset >= size) continue;
    size_t length = static_cast<size_t>(std::min<uint64_t>(4096, size - offset));
    (void)storage::writeSync(image, loop, offset, buffer.data(), length);
  }
  if (size >= 3 * 65536) {
    (void)storage::writeZeroesSync(image, loop, 65536, 65536);
    (void)storage::discardSync(image, loop, 2 * 65536, 65536);
  }
  (void)storage::flushSync(image, loop);
  (void)storage::readSync(image, loop, 0, buffer.data(), static_cast<size_t>(std::min<uint64_t>(buffer.size(), size)));
}

}  // namespace

int qcow2ImageOneInput(const uint8_t* data, size_t size) {
  auto& fuzz = state();
  for (bool writable : {false, true}) {
    // Rewritten each time: the read-write pass must not see the read-only pass's effects.
    if (!fuzz.file.write(data, size)) return 0;
    storage::DiskOptions options;
    options.readOnly = !writable;
    options.format = storage::ImageFormat::Qcow2;
    auto image = storage::openDiskImage(fuzz.file.path(), options, *fuzz.loop);
    if (!image) continue;
    exercise(**image, *fuzz.loop, writable);
  }
  return 0;
}

}  // namespace strata::fuzz
