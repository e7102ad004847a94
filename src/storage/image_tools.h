// The operations behind `strata image`: info, check, convert and commit. They
// run synchronously on an EventLoop the caller owns, through the same
// BlockDevice paths a VM uses (see sync_io.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"

namespace strata::storage {

struct ImageInfo {
  std::string path;
  ImageFormat format = ImageFormat::Raw;
  uint64_t virtualSize = 0;
  uint64_t diskSize = 0;     // bytes the file occupies on the host
  uint64_t clusterSize = 0;  // qcow2 only
  uint32_t refcountBits = 0;
  std::string backingFile;   // as stored in the image
  std::string backingFormat;
  bool corrupt = false;
  bool lazyRefcounts = false;
};

// Reads the header only: works without the backing file being present.
Result<ImageInfo> imageInfo(const std::string& path);
std::string formatInfoText(const ImageInfo& info);
std::string formatInfoJson(const ImageInfo& info);

struct CheckReport {
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  uint64_t allocatedClusters = 0;  // guest clusters allocated in this image
  uint64_t totalClusters = 0;      // guest clusters of the virtual disk
  uint64_t imageEndOffset = 0;
  std::vector<std::string> messages;  // one per problem, like qemu-img check, up to kMaxCheckMessages
  uint64_t messagesOmitted = 0;       // problems beyond those, only counted
};
inline constexpr size_t kMaxCheckMessages = 100;
// Refcount consistency of a qcow2 image: every cluster's stored refcount
// against the references found by walking all tables. Time and memory are
// bounded by what the file holds, whatever its header and tables claim.
Result<CheckReport> checkImage(const std::string& path);
// qemu-img's convention: 0 clean, 2 corruptions, 3 only leaks.
int checkExitCode(const CheckReport& report);

using ProgressCallback = std::function<void(uint64_t done, uint64_t total)>;

struct ConvertOptions {
  ImageFormat sourceFormat = ImageFormat::Auto;
  CreateOptions target;  // format, cluster size; size comes from the source
};
// Copies the guest-visible content of source (flattening its backing chain)
// into a new image, skipping ranges that are unallocated or read as zeroes.
Result<void> convertImage(const std::string& source, const std::string& target, const ConvertOptions& options,
                          EventLoop& loop, const ProgressCallback& progress);

struct CommitResult {
  std::string backingPath;
  uint64_t bytesCommitted = 0;
};
// Writes every range allocated in a qcow2 overlay into its backing image. The
// overlay keeps its own data, so it still reads the same afterwards.
Result<CommitResult> commitImage(const std::string& path, EventLoop& loop, const ProgressCallback& progress);

// The status of [offset, offset+length) as the guest sees it through the
// whole backing chain: Data, or Zero for anything that reads as zeroes.
Result<Extent> effectiveStatus(DiskImage& image, uint64_t offset, uint64_t length);

}  // namespace strata::storage
