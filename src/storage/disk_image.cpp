#include "storage/disk_image.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>

#include "base/unique_fd.h"
#include "storage/qcow2_image.h"
#include "storage/raw_image.h"

namespace strata::storage {

namespace {
// Deep enough for any sane chain of linked clones, small enough that a crafted
// chain cannot exhaust file descriptors or stack.
constexpr size_t kMaxBackingDepth = 16;
}  // namespace

const char* formatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::Raw:
      return "raw";
    case ImageFormat::Qcow2:
      return "qcow2";
    case ImageFormat::Auto:
      break;
  }
  return "auto";
}

Result<ImageFormat> parseFormatName(const std::string& name) {
  if (name == "raw") return ImageFormat::Raw;
  if (name == "qcow2") return ImageFormat::Qcow2;
  return Error{"unknown image format '" + name + "' (expected raw or qcow2)"};
}

ImageFormat probeFormatOfHead(std::span<const uint8_t> head) {
  if (head.size() >= kFormatProbeBytes && std::memcmp(head.data(), "QFI\xfb", 4) == 0) return ImageFormat::Qcow2;
  return ImageFormat::Raw;
}

std::string probedFormatWarning(const DiskImage& image, const std::string& formatOption) {
  std::string format = formatName(image.format());
  std::string text = image.path() + ": no format given, probed as " + format + "; it stays " + format +
                     " while this process runs";
  if (image.format() == ImageFormat::Raw && !image.readOnly())
    text += ", and writes that would make it probe as another format are refused";
  return text + ". Name the format with " + formatOption + format;
}

Result<ImageFormat> probeImageFormat(const std::string& path) {
  auto fd = openImageFile(path, O_RDONLY);
  if (!fd) return fd.error();
  uint8_t head[kFormatProbeBytes] = {};
  ssize_t got = ::pread(fd->get(), head, sizeof head, 0);
  if (got < 0) return errnoError(path);
  return probeFormatOfHead(std::span<const uint8_t>(head, static_cast<size_t>(got)));
}

namespace detail {

Result<std::unique_ptr<DiskImage>> openDiskImageInChain(const std::string& path, const DiskOptions& options,
                                                        EventLoop& loop, ChainContext& chain) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return errnoError(path);
  std::string canonical(resolved);
  if (std::find(chain.openPaths.begin(), chain.openPaths.end(), canonical) != chain.openPaths.end()) {
    return Error{path + ": backing chain loop (the image is its own ancestor)"};
  }
  if (chain.openPaths.size() >= kMaxBackingDepth) {
    return Error{path + ": backing chain deeper than " + std::to_string(kMaxBackingDepth) + " images"};
  }
  ImageFormat format = options.format;
  const bool probed = format == ImageFormat::Auto;
  if (probed) {
    auto detected = probeImageFormat(path);
    if (!detected) return detected.error();
    format = *detected;
  }
  if (format == ImageFormat::Raw) {
    RawOpenOptions rawOptions{.readOnly = options.readOnly, .direct = options.direct, .keepProbedFormat = probed};
    auto raw = RawImage::open(path, rawOptions, loop);
    if (!raw) return raw.error();
    return std::unique_ptr<DiskImage>(std::move(*raw));
  }
  chain.openPaths.push_back(canonical);
  auto qcow2 = Qcow2Image::open(path, options, loop, chain);
  chain.openPaths.pop_back();
  if (!qcow2) return qcow2.error();
  return std::unique_ptr<DiskImage>(std::move(*qcow2));
}

}  // namespace detail

Result<std::unique_ptr<DiskImage>> openDiskImage(const std::string& path, const DiskOptions& options,
                                                 EventLoop& loop) {
  detail::ChainContext chain;
  return detail::openDiskImageInChain(path, options, loop, chain);
}

}  // namespace strata::storage
