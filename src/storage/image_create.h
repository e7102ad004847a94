// Creating new disk images: raw (a sparse file) and qcow2 version 3 (header,
// one refcount table, its refcount blocks and an empty L1 table), optionally
// as a linked clone on top of a backing image.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "storage/disk_image.h"

namespace strata::storage {

struct CreateOptions {
  ImageFormat format = ImageFormat::Raw;
  uint64_t size = 0;
  uint32_t clusterSize = 65536;  // qcow2 only: a power of two from 512 to 2 MiB
  uint32_t refcountBits = 16;     // qcow2 only: 1, 2, 4, ..., 64
  std::string backingFile;        // qcow2 only: stored as given (relative to the new image)
  ImageFormat backingFormat = ImageFormat::Auto;
};

// Fails if path exists, so an image is never clobbered by accident.
Result<void> createImage(const std::string& path, const CreateOptions& options);
// The same into fd, a new empty file the caller created as path (a sandboxed
// thread that may create files but not remove them); on failure the caller
// decides what becomes of the file.
Result<void> writeNewImage(int fd, const std::string& path, const CreateOptions& options);

// Parses sizes like "512", "64K", "64M", "10G", "1T" (binary units).
Result<uint64_t> parseSize(const std::string& text);

}  // namespace strata::storage
