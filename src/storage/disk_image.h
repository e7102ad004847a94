// DiskImage: a BlockDevice backed by an image file (raw or qcow2), plus what the
// image tools need beyond guest I/O (format, allocation status, backing chain).
// openDiskImage() is the one entry point: it probes the format and opens the
// right backend; `strata run --disk` and `strata image` both go through it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"

namespace strata::storage {

enum class ImageFormat { Auto, Raw, Qcow2 };

const char* formatName(ImageFormat format);
// Accepts "raw" and "qcow2"; anything else is an error naming the value.
Result<ImageFormat> parseFormatName(const std::string& name);

struct DiskOptions {
  bool readOnly = false;
  bool direct = false;  // O_DIRECT: bypass the host page cache
  ImageFormat format = ImageFormat::Auto;
  // qcow2: bytes of L2 tables kept in memory (0: the default, 32 MiB); at least 16 tables.
  size_t l2CacheBytes = 0;
};

// What a range of the image holds, for tools that skip holes (convert, map).
enum class ExtentKind {
  Data,         // allocated here (may still read as zeroes)
  Zero,         // reads as zeroes, known without reading
  Unallocated,  // not allocated in this image: reads come from the backing file, or zeroes
};

struct Extent {
  ExtentKind kind;
  uint64_t length;  // > 0 and never past the requested range
};

class DiskImage : public BlockDevice {
 public:
  DiskImage* image() override { return this; }
  virtual ImageFormat format() const = 0;
  virtual const std::string& path() const = 0;
  // The status of the range starting at offset, up to length bytes.
  virtual Result<Extent> blockStatus(uint64_t offset, uint64_t length) = 0;
  // The backing image or nullptr; it is owned by this image.
  virtual DiskImage* backing() { return nullptr; }
  // Host bytes the image file occupies.
  virtual uint64_t allocatedBytes() const = 0;
};

// Opens path, probing the format unless options.format says otherwise.
// Errors read like "disk.img: No such file or directory".
Result<std::unique_ptr<DiskImage>> openDiskImage(const std::string& path, const DiskOptions& options,
                                                 EventLoop& loop);

// What to tell the user about an image opened without a format: it stays the
// probed format while this process runs and, if raw, refuses writes that
// would make it probe as another; `formatOption` (e.g. "--format ") followed
// by the format's name is how to name it instead.
std::string probedFormatWarning(const DiskImage& image, const std::string& formatOption);

// Reads the first bytes of path and reports qcow2 (by magic) or raw.
Result<ImageFormat> probeImageFormat(const std::string& path);

// How many leading bytes of an image decide what it probes as.
inline constexpr size_t kFormatProbeBytes = 4;
// The format an image starting with `head` probes as; fewer than
// kFormatProbeBytes bytes probe as raw. probeImageFormat() decides by this.
ImageFormat probeFormatOfHead(std::span<const uint8_t> head);

namespace detail {
// Opens with a backing-chain context so loops (a -> b -> a) and overlong chains fail.
struct ChainContext {
  std::vector<std::string> openPaths;  // canonical paths of images above this one
};
Result<std::unique_ptr<DiskImage>> openDiskImageInChain(const std::string& path, const DiskOptions& options,
                                                        EventLoop& loop, ChainContext& chain);
}  // namespace detail

}  // namespace strata::storage
