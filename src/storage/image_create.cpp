#include "storage/image_create.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cctype>
#include <vector>

#include "base/unique_fd.h"
#include "storage/qcow2_format.h"

namespace strata::storage {

namespace {

Result<void> writeAll(int fd, const std::vector<uint8_t>& bytes, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(path);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<void> createQcow2(int fd, const std::string& path, const CreateOptions& options) {
  using namespace qcow2;
  uint32_t clusterBits = 0;
  while ((1u << clusterBits) < options.clusterSize) ++clusterBits;
  if ((1u << clusterBits) != options.clusterSize || clusterBits < kMinClusterBits || clusterBits > kMaxClusterBits) {
    return Error{fmt::format("invalid cluster size {} (a power of two from 512 to 2M)", options.clusterSize)};
  }
  uint32_t refcountOrder = 0;
  while ((1u << refcountOrder) < options.refcountBits) ++refcountOrder;
  if ((1u << refcountOrder) != options.refcountBits || refcountOrder > 6) {
    return Error{fmt::format("invalid refcount width {} (a power of two from 1 to 64)", options.refcountBits)};
  }
  if (options.backingFile.size() > kMaxBackingNameLength) return Error{"backing file name too long"};

  Header h;
  h.clusterBits = clusterBits;
  h.size = options.size;
  h.refcountOrder = refcountOrder;
  const uint64_t clusterSize = h.clusterSize();
  if (h.size > (1ull << 62)) return Error{"image size too large"};
  uint64_t l1Entries = h.l1EntriesNeeded();
  if (l1Entries * 8 > kMaxL1Bytes) return Error{"image size too large for this cluster size"};
  h.l1Size = static_cast<uint32_t>(l1Entries);

  // Layout: header | refcount table | refcount blocks | L1 table. The metadata
  // must be counted by the refcount blocks, which are part of it: iterate.
  const uint64_t l1Clusters = std::max<uint64_t>(1, (l1Entries * 8 + clusterSize - 1) / clusterSize);
  const uint64_t perBlock = h.refcountsPerBlock();
  uint64_t tableClusters = 1, blocks = 1;
  for (;;) {
    uint64_t total = 1 + tableClusters + blocks + l1Clusters;
    uint64_t neededBlocks = (total + perBlock - 1) / perBlock;
    uint64_t neededTable = std::max<uint64_t>(1, (neededBlocks * 8 + clusterSize - 1) / clusterSize);
    if (neededBlocks == blocks && neededTable == tableClusters) break;
    blocks = neededBlocks;
    tableClusters = neededTable;
  }
  if (tableClusters * clusterSize > kMaxRefcountTableBytes) return Error{"image size too large"};
  const uint64_t totalClusters = 1 + tableClusters + blocks + l1Clusters;
  h.refcountTableOffset = clusterSize;
  h.refcountTableClusters = static_cast<uint32_t>(tableClusters);
  h.l1TableOffset = (1 + tableClusters + blocks) * clusterSize;
  h.headerLength = kHeaderLengthWithCompression;

  // Header cluster: fields, extensions, end marker, backing file name.
  std::vector<uint8_t> headerCluster = encodeHeaderFields(h);
  auto appendExtension = [&](uint32_t type, const std::string& data) {
    size_t at = headerCluster.size();
    headerCluster.resize(at + 8 + ((data.size() + 7) & ~size_t{7}), 0);
    storeBe32(&headerCluster[at], type);
    storeBe32(&headerCluster[at + 4], static_cast<uint32_t>(data.size()));
    std::copy(data.begin(), data.end(), headerCluster.begin() + static_cast<long>(at + 8));
  };
  if (!options.backingFile.empty() && options.backingFormat != ImageFormat::Auto) {
    appendExtension(kExtBackingFormat, formatName(options.backingFormat));
  }
  headerCluster.resize(headerCluster.size() + 8, 0);  // end of extensions
  if (!options.backingFile.empty()) {
    h.backingFileOffset = headerCluster.size();
    h.backingFileSize = static_cast<uint32_t>(options.backingFile.size());
    headerCluster.insert(headerCluster.end(), options.backingFile.begin(), options.backingFile.end());
    auto fields = encodeHeaderFields(h);
    std::copy(fields.begin(), fields.end(), headerCluster.begin());
  }
  if (headerCluster.size() > clusterSize) return Error{"header does not fit in one cluster; use a larger cluster size"};

  std::vector<uint8_t> table(tableClusters * clusterSize, 0);
  for (uint64_t b = 0; b < blocks; ++b) storeBe64(&table[b * 8], (1 + tableClusters + b) * clusterSize);
  std::vector<uint8_t> refblocks(blocks * clusterSize, 0);
  // Refcount 1 for every metadata cluster, in the image's refcount width.
  const uint32_t bits = h.refcountBits();
  for (uint64_t c = 0; c < totalClusters; ++c) {
    if (bits >= 8) {
      refblocks[c * (bits / 8) + bits / 8 - 1] = 1;
    } else {
      refblocks[c * bits / 8] |= static_cast<uint8_t>(1u << ((c % (8 / bits)) * bits));
    }
  }
  if (::ftruncate(fd, static_cast<off_t>(totalClusters * clusterSize)) != 0) return errnoError(path);
  auto w = writeAll(fd, headerCluster, 0, path);
  if (w) w = writeAll(fd, table, clusterSize, path);
  if (w) w = writeAll(fd, refblocks, (1 + tableClusters) * clusterSize, path);
  return w;
}

}  // namespace

Result<uint64_t> parseSize(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 19) return Error{"invalid size '" + text + "'"};
  uint64_t value = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  unsigned shift = 0;
  if (suffix.empty() || suffix == "B" || suffix == "b") {
    shift = 0;
  } else {
    char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    std::string rest = suffix.substr(1);
    if (!(rest.empty() || rest == "B" || rest == "iB")) return Error{"invalid size '" + text + "'"};
    switch (unit) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      case 'P': shift = 50; break;
      default: return Error{"invalid size '" + text + "'"};
    }
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return Error{"size '" + text + "' is too large"};
  return value << shift;
}

Result<void> createImage(const std::string& path, const CreateOptions& options) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return errnoError(path);
  Result<void> result = writeNewImage(fd.get(), path, options);
  if (!result) ::unlink(path.c_str());
  return result;
}

Result<void> writeNewImage(int fd, const std::string& path, const CreateOptions& options) {
  if (options.format == ImageFormat::Raw && !options.backingFile.empty()) {
    return Error{"raw images cannot have a backing file"};
  }
  Result<void> result;
  if (options.format == ImageFormat::Qcow2) {
    result = createQcow2(fd, path, options);
  } else if (::ftruncate(fd, static_cast<off_t>(options.size)) != 0) {
    result = errnoError(path);
  }
  if (result && ::fsync(fd) != 0) result = errnoError(path);
  return result;
}

}  // namespace strata::storage
