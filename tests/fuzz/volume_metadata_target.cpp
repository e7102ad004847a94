// Volume-manager metadata decoders. Input: kind byte, flags byte (bit 0 clear:
// the stored CRC is recomputed so the parser behind the checksum is reached),
// the decoder's parameters, then the bytes decoded. Whatever decodes must
// encode again and decode to the same thing.
#include <cstdlib>
#include <vector>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/thin_metadata.h"

namespace strata::fuzz {

namespace {

using namespace storage::volume;

enum Kind : uint8_t { kLabel, kIntentHeader, kMetadataSlot, kThinSuperblock, kThinCheckpoint, kThinJournal, kKinds };

// What the encoders do: a CRC-32C over `checked` bytes with its own field zeroed.
void sealCrc(std::vector<uint8_t>& bytes, size_t checked, size_t crcOffset) {
  if (bytes.size() < checked || checked < crcOffset + 4) return;
  storeLe32(&bytes[crcOffset], 0);
  storeLe32(&bytes[crcOffset], storage::crc32c(bytes.data(), checked));
}

// A decoded value that does not survive its own encoder is a bug: trap.
void require(bool invariant) {
  if (!invariant) std::abort();
}

bool sameDevices(const ThinDevices& a, const ThinDevices& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [id, map] : a) {
    auto other = b.find(id);
    if (other == b.end() || other->second.count() != map.count()) return false;
    bool same = true;
    map.forEach([&](uint64_t v, uint32_t chunk) { same = same && other->second.get(v) == chunk; });
    if (!same) return false;
  }
  return true;
}

void label(std::vector<uint8_t> bytes, bool fix) {
  if (fix) sealCrc(bytes, 512, 12);
  auto decoded = decodeLabel(bytes.data(), bytes.size());
  if (!decoded) return;
  auto encoded = encodeLabel(*decoded);
  auto again = decodeLabel(encoded.data(), encoded.size());
  require(again && again->poolUuid == decoded->poolUuid && again->pvUuid == decoded->pvUuid &&
          again->pvIndex == decoded->pvIndex && again->sizeBytes == decoded->sizeBytes &&
          again->extentSize == decoded->extentSize);
}

void intentHeader(uint64_t dataBytes, std::vector<uint8_t> bytes, bool fix) {
  if (fix) sealCrc(bytes, 512, 12);
  auto decoded = decodeIntentHeader(bytes.data(), bytes.size(), dataBytes);
  if (!decoded) return;
  auto encoded = encodeIntentHeader(*decoded);
  auto again = decodeIntentHeader(encoded.data(), encoded.size(), dataBytes);
  require(again && again->pvUuid == decoded->pvUuid && again->regionBytes == decoded->regionBytes &&
          again->regionCount == decoded->regionCount);
}

void metadataSlot(std::vector<uint8_t> bytes, bool fix) {
  if (fix && bytes.size() >= 64) {
    uint64_t payload = loadLe32(&bytes[24]);
    if (payload <= bytes.size() - 64) sealCrc(bytes, 64 + payload, 12);
  }
  auto decoded = decodeMetadataSlot(bytes.data(), bytes.size());
  if (!decoded) return;
  auto encoded = encodeMetadataSlot(*decoded);
  require(encoded.ok());
  auto again = decodeMetadataSlot(encoded->data(), encoded->size());
  require(again && again->name == decoded->name && again->sequence == decoded->sequence &&
          again->pvs.size() == decoded->pvs.size() && again->volumes.size() == decoded->volumes.size());
}

void thinSuperblock(std::vector<uint8_t> bytes, bool fix) {
  if (fix) sealCrc(bytes, 512, 12);
  auto decoded = decodeThinSuperblock(bytes.data(), bytes.size());
  if (!decoded) return;
  auto encoded = encodeThinSuperblock(*decoded);
  auto again = decodeThinSuperblock(encoded.data(), encoded.size());
  require(again && again->sequence == decoded->sequence && again->generation == decoded->generation &&
          again->chunkSize == decoded->chunkSize && again->checkpointArea == decoded->checkpointArea &&
          again->checkpointLength == decoded->checkpointLength && again->checkpointCrc == decoded->checkpointCrc);
}

// dataChunks stays small: a run may legitimately map every chunk of the data
// volume, so the work is bounded by the pool's size, not by the input's.
void thinCheckpoint(uint64_t generation, uint64_t dataChunks, const std::vector<uint8_t>& bytes) {
  auto decoded = decodeThinCheckpoint(bytes.data(), bytes.size(), generation, dataChunks);
  if (!decoded) return;
  auto encoded = encodeThinCheckpoint(generation, *decoded);
  auto again = decodeThinCheckpoint(encoded.data(), encoded.size(), generation, dataChunks);
  require(again && sameDevices(*again, *decoded));
}

// A journal record replayed onto an empty pool, and the layout of a metadata
// volume of the size given: its areas must lie inside it without overlapping.
void thinJournal(uint64_t generation, uint64_t sequence, uint64_t dataChunks, uint64_t metaSize,
                 std::vector<uint8_t> bytes, bool fix) {
  if (auto layout = ThinMetaLayout::compute(metaSize)) {
    require(layout->checkpointOffset[0] >= 2 * kThinSuperblockSize &&
            layout->checkpointOffset[1] >= layout->checkpointOffset[0] + layout->checkpointSize &&
            layout->journalOffset >= layout->checkpointOffset[1] + layout->checkpointSize &&
            layout->journalOffset <= metaSize && layout->journalSize <= metaSize - layout->journalOffset);
  }
  if (fix && bytes.size() >= 32) {
    uint64_t payload = loadLe32(&bytes[12]);
    if (payload <= bytes.size() - 32) sealCrc(bytes, 32 + payload, 8);
  }
  auto decoded = decodeThinJournalRecord(bytes.data(), bytes.size(), generation, sequence);
  if (!decoded) return;
  require(decoded->length >= 32 && decoded->length % 4096 == 0);
  ThinDevices devices;
  for (const ThinOp& op : decoded->ops) (void)applyThinOp(devices, op, dataChunks);
  auto encoded = encodeThinJournalRecord(generation, sequence, decoded->ops);
  auto again = decodeThinJournalRecord(encoded.data(), encoded.size(), generation, sequence);
  require(again && again->ops.size() == decoded->ops.size());
}

}  // namespace

int volumeMetadataOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  uint8_t kind = input.u8() % kKinds;
  bool fix = !(input.u8() & 1);
  switch (kind) {
    case kLabel: label(input.rest(), fix); break;
    case kIntentHeader: {
      uint64_t dataBytes = input.u64();
      intentHeader(dataBytes, input.rest(), fix);
      break;
    }
    case kMetadataSlot: metadataSlot(input.rest(), fix); break;
    case kThinSuperblock: thinSuperblock(input.rest(), fix); break;
    case kThinCheckpoint: {
      uint64_t generation = input.u64();
      uint64_t dataChunks = input.u16() % 4096 + 1;
      thinCheckpoint(generation, dataChunks, input.rest());
      break;
    }
    case kThinJournal: {
      uint64_t generation = input.u64();
      uint64_t sequence = input.u64();
      uint64_t dataChunks = input.u16() % 4096 + 1;
      uint64_t metaSize = input.u64();
      thinJournal(generation, sequence, dataChunks, metaSize, input.rest(), fix);
      break;
    }
  }
  return 0;
}

}  // namespace strata::fuzz
