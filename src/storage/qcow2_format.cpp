#include "storage/qcow2_format.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

namespace strata::storage::qcow2 {

uint64_t Header::l1EntriesNeeded() const {
  uint64_t span = clusterSize() * l2Entries();  // guest bytes one L2 table maps
  return size / span + (size % span != 0 ? 1 : 0);
}

namespace {

Error fail(const std::string& name, const std::string& what) { return Error{name + ": " + what}; }

const char* knownFeatureName(uint8_t type, uint8_t bit) {
  if (type == 0) {
    switch (bit) {
      case 0: return "dirty bit";
      case 1: return "corrupt bit";
      case 2: return "external data file";
      case 3: return "compression type";
      case 4: return "extended L2 entries";
    }
  } else if (type == 1 && bit == 0) {
    return "lazy refcounts";
  }
  return nullptr;
}

Result<void> parseExtensions(const std::vector<uint8_t>& bytes, uint64_t start, uint64_t end, Header& header,
                             const std::string& name) {
  uint64_t offset = start;
  while (offset + 8 <= end) {
    uint32_t type = loadBe32(&bytes[offset]);
    uint32_t length = loadBe32(&bytes[offset + 4]);
    offset += 8;
    if (type == kExtEnd) return {};
    if (length > end - offset) {
      return fail(name, fmt::format("header extension 0x{:08x} of {} bytes runs past the header area", type, length));
    }
    const uint8_t* data = &bytes[offset];
    switch (type) {
      case kExtBackingFormat:
        if (length > kMaxBackingNameLength) return fail(name, "backing format name too long");
        header.backingFormat.assign(reinterpret_cast<const char*>(data), length);
        break;
      case kExtFeatureTable:
        for (uint32_t i = 0; i + 48 <= length; i += 48) {
          const char* text = reinterpret_cast<const char*>(data + i + 2);
          header.featureNames.push_back(FeatureName{data[i], data[i + 1], std::string(text, strnlen(text, 46))});
        }
        break;
      case kExtExternalDataFile:
        header.hasExternalDataFile = true;
        break;
      default:
        break;  // unknown extensions are skipped, as the spec allows
    }
    uint64_t padded = (uint64_t{length} + 7) & ~uint64_t{7};
    if (padded > end - offset) return {};  // padding may be cut off by the end of the area
    offset += padded;
  }
  return {};
}

}  // namespace

std::string describeFeatures(const Header& header, uint64_t mask, uint8_t type) {
  std::string text;
  for (uint8_t bit = 0; bit < 64; ++bit) {
    if ((mask & (1ull << bit)) == 0) continue;
    std::string feature;
    for (const auto& entry : header.featureNames) {
      if (entry.type == type && entry.bit == bit && !entry.name.empty()) feature = entry.name;
    }
    if (feature.empty()) {
      const char* known = knownFeatureName(type, bit);
      feature = known != nullptr ? known : fmt::format("unknown feature bit {}", bit);
    }
    if (!text.empty()) text += ", ";
    text += feature;
  }
  return text;
}

Result<Header> parseHeader(const std::vector<uint8_t>& bytes, uint64_t fileSize, const std::string& name) {
  if (bytes.size() < 72) return fail(name, "truncated qcow2 header");
  if (loadBe32(&bytes[0]) != kMagic) return fail(name, "not a qcow2 image");
  Header h;
  h.version = loadBe32(&bytes[4]);
  if (h.version != 3) return fail(name, fmt::format("unsupported qcow2 version {}", h.version));
  if (bytes.size() < kV3HeaderLength) return fail(name, "truncated qcow2 header");
  h.backingFileOffset = loadBe64(&bytes[8]);
  h.backingFileSize = loadBe32(&bytes[16]);
  h.clusterBits = loadBe32(&bytes[20]);
  h.size = loadBe64(&bytes[24]);
  h.cryptMethod = loadBe32(&bytes[32]);
  h.l1Size = loadBe32(&bytes[36]);
  h.l1TableOffset = loadBe64(&bytes[40]);
  h.refcountTableOffset = loadBe64(&bytes[48]);
  h.refcountTableClusters = loadBe32(&bytes[56]);
  h.nbSnapshots = loadBe32(&bytes[60]);
  h.snapshotsOffset = loadBe64(&bytes[64]);
  h.incompatibleFeatures = loadBe64(&bytes[72]);
  h.compatibleFeatures = loadBe64(&bytes[80]);
  h.autoclearFeatures = loadBe64(&bytes[88]);
  h.refcountOrder = loadBe32(&bytes[96]);
  h.headerLength = loadBe32(&bytes[100]);

  if (h.clusterBits < kMinClusterBits || h.clusterBits > kMaxClusterBits) {
    return fail(name, fmt::format("unsupported cluster size 2^{} (must be 2^9 to 2^21)", h.clusterBits));
  }
  const uint64_t clusterSize = h.clusterSize();
  if (h.headerLength < kV3HeaderLength || h.headerLength % 8 != 0 || h.headerLength > clusterSize) {
    return fail(name, fmt::format("invalid header length {}", h.headerLength));
  }
  if (h.headerLength > bytes.size()) return fail(name, "truncated qcow2 header");
  if (h.headerLength > kV3HeaderLength) h.compressionType = bytes[104];

  // Feature bits: refuse what we do not implement rather than misread the image.
  constexpr uint64_t kSupportedIncompatible = kIncompatDirty | kIncompatCorrupt | kIncompatCompressionType;
  uint64_t unsupported = h.incompatibleFeatures & ~kSupportedIncompatible;
  if (unsupported != 0) {
    return fail(name, "unsupported qcow2 feature(s): " + describeFeatures(h, unsupported, 0));
  }
  if ((h.incompatibleFeatures & kIncompatCompressionType) != 0 && h.headerLength <= kV3HeaderLength) {
    return fail(name, "compression type bit set but header has no compression type field");
  }
  if (h.compressionType != 0) {
    return fail(name, fmt::format("unsupported compression type {} (only zlib is supported)", h.compressionType));
  }
  if (h.cryptMethod != 0) return fail(name, "encrypted qcow2 images are not supported");
  if (h.refcountOrder > 6) return fail(name, fmt::format("invalid refcount order {}", h.refcountOrder));
  if (h.size > (1ull << 62)) return fail(name, fmt::format("virtual size {} is too large", h.size));

  // L1 table.
  if (uint64_t{h.l1Size} * 8 > kMaxL1Bytes) return fail(name, fmt::format("L1 table too large ({} entries)", h.l1Size));
  if (h.l1Size < h.l1EntriesNeeded()) {
    return fail(name, fmt::format("L1 table too small ({} entries) for virtual size {}", h.l1Size, h.size));
  }
  if (h.l1Size > 0) {
    if (h.l1TableOffset % clusterSize != 0 || h.l1TableOffset == 0) {
      return fail(name, fmt::format("L1 table offset 0x{:x} is invalid (not cluster aligned)", h.l1TableOffset));
    }
    if (h.l1TableOffset > fileSize || uint64_t{h.l1Size} * 8 > fileSize - h.l1TableOffset) {
      return fail(name, fmt::format("L1 table at 0x{:x} lies past the end of the file", h.l1TableOffset));
    }
  }
  // Refcount table.
  if (h.refcountTableClusters == 0 || h.refcountTableClusters * clusterSize > kMaxRefcountTableBytes) {
    return fail(name, fmt::format("invalid refcount table size ({} clusters)", h.refcountTableClusters));
  }
  if (h.refcountTableOffset % clusterSize != 0 || h.refcountTableOffset == 0) {
    return fail(name, fmt::format("refcount table offset 0x{:x} is invalid (not cluster aligned)",
                                  h.refcountTableOffset));
  }
  if (h.refcountTableOffset > fileSize || h.refcountTableClusters * clusterSize > fileSize - h.refcountTableOffset) {
    return fail(name, fmt::format("refcount table at 0x{:x} lies past the end of the file", h.refcountTableOffset));
  }
  if (h.nbSnapshots > 0) {
    if (h.nbSnapshots > 65536) return fail(name, "too many snapshots");
    if (h.snapshotsOffset % clusterSize != 0 || h.snapshotsOffset == 0 || h.snapshotsOffset >= fileSize) {
      return fail(name, fmt::format("snapshot table offset 0x{:x} is invalid", h.snapshotsOffset));
    }
  }

  // Backing file name: inside the first cluster, after the extensions.
  uint64_t extensionsEnd = std::min<uint64_t>(bytes.size(), clusterSize);
  if (h.backingFileOffset != 0) {
    if (h.backingFileSize > kMaxBackingNameLength || h.backingFileSize == 0) {
      return fail(name, fmt::format("invalid backing file name length {}", h.backingFileSize));
    }
    if (h.backingFileOffset < h.headerLength || h.backingFileOffset > extensionsEnd ||
        h.backingFileSize > extensionsEnd - h.backingFileOffset) {
      return fail(name, fmt::format("backing file name at offset {} lies outside the header cluster",
                                    h.backingFileOffset));
    }
    h.backingFile.assign(reinterpret_cast<const char*>(&bytes[h.backingFileOffset]), h.backingFileSize);
    if (h.backingFile.find('\0') != std::string::npos) return fail(name, "backing file name contains a NUL byte");
    extensionsEnd = h.backingFileOffset;
  }
  auto parsed = parseExtensions(bytes, h.headerLength, extensionsEnd, h, name);
  if (!parsed) return parsed.error();
  if (h.hasExternalDataFile) return fail(name, "qcow2 images with an external data file are not supported");
  return h;
}

std::vector<uint8_t> encodeHeaderFields(const Header& h) {
  std::vector<uint8_t> out(kHeaderLengthWithCompression, 0);
  storeBe32(&out[0], kMagic);
  storeBe32(&out[4], h.version);
  storeBe64(&out[8], h.backingFileOffset);
  storeBe32(&out[16], h.backingFileSize);
  storeBe32(&out[20], h.clusterBits);
  storeBe64(&out[24], h.size);
  storeBe32(&out[32], h.cryptMethod);
  storeBe32(&out[36], h.l1Size);
  storeBe64(&out[40], h.l1TableOffset);
  storeBe64(&out[48], h.refcountTableOffset);
  storeBe32(&out[56], h.refcountTableClusters);
  storeBe32(&out[60], h.nbSnapshots);
  storeBe64(&out[64], h.snapshotsOffset);
  storeBe64(&out[72], h.incompatibleFeatures);
  storeBe64(&out[80], h.compatibleFeatures);
  storeBe64(&out[88], h.autoclearFeatures);
  storeBe32(&out[96], h.refcountOrder);
  storeBe32(&out[100], h.headerLength);
  out[104] = h.compressionType;
  return out;
}

Result<ClusterMapping> decodeL2Entry(uint64_t entry, const Header& header) {
  ClusterMapping mapping{ClusterKind::Unallocated};
  if ((entry & kEntryCompressed) != 0) {
    uint32_t shift = header.compressedSectorShift();
    uint64_t offset = entry & ((1ull << shift) - 1);
    uint64_t sectors = (entry >> shift) & ((1ull << (62 - shift)) - 1);
    if ((entry & kEntryCopied) != 0) return Error{"compressed cluster entry has the copied flag set"};
    mapping.kind = ClusterKind::Compressed;
    mapping.hostOffset = offset;
    mapping.compressedBytes = (sectors + 1) * 512 - (offset & 511);
    return mapping;
  }
  if ((entry & kL2StandardReservedMask) != 0) return Error{fmt::format("L2 entry 0x{:x} has reserved bits set", entry)};
  uint64_t offset = entry & kL2OffsetMask;
  if (offset % header.clusterSize() != 0) {
    return Error{fmt::format("L2 entry points to unaligned offset 0x{:x}", offset)};
  }
  mapping.hostOffset = offset;
  mapping.copied = (entry & kEntryCopied) != 0;
  if ((entry & kL2ZeroFlag) != 0) {
    mapping.kind = ClusterKind::Zero;
  } else if (offset != 0) {
    mapping.kind = ClusterKind::Normal;
  }
  return mapping;
}

uint64_t refcountAt(const uint8_t* block, uint64_t index, uint32_t order) {
  uint32_t bits = 1u << order;
  if (bits >= 8) {
    uint32_t bytes = bits / 8;
    const uint8_t* p = block + index * bytes;
    uint64_t value = 0;
    for (uint32_t k = 0; k < bytes; ++k) value = (value << 8) | p[k];
    return value;
  }
  uint32_t perByte = 8 / bits;
  uint32_t shift = static_cast<uint32_t>(index % perByte) * bits;
  return (block[index / perByte] >> shift) & ((1u << bits) - 1);
}

}  // namespace strata::storage::qcow2
