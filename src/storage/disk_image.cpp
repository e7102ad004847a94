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

Result<ImageFormat> probeImageFormat(const std::string& path) {
  auto fd = openImageFile(path, O_RDONLY);
  if (!fd) return fd.error();
  uint8_t magic[4] = {};
  ssize_t got = ::pread(fd->get(), magic, sizeof magic, 0);
  if (got < 0) return errnoError(path);
  if (got == 4 && std::memcmp(magic, "QFI\xfb", 4) == 0) return ImageFormat::Qcow2;
  return ImageFormat::Raw;
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
  if (format == ImageFormat::Auto) {
    auto probed = probeImageFormat(path);
    if (!probed) return probed.error();
    format = *probed;
  }
  if (format == ImageFormat::Raw) {
    auto raw = RawImage::open(path, RawOpenOptions{options.readOnly, options.direct, false}, loop);
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
