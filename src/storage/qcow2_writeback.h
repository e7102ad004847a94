// qcow2::Writeback: one flush of a qcow2 image's metadata, asynchronous through
// the image file's io_uring (nothing blocks the loop thread). Phases, in
// Metadata::kWriteOrder, each durable (fdatasync) before the next is written:
//   refcount blocks -> refcount table (in place, or grown at its new place) ->
//   header (only when the table moved) -> L2 tables -> L1 table
// so every pointer reaches the disk after what it points at, and new clusters
// are counted before any L2 entry maps them. L2 tables are never written before
// a sync in the same flush: the data they map is durable first. A phase's
// tables are marked clean only once synced; a failed write or sync fails the
// flush and leaves them dirty for the next one. Then the refcount drops
// deferred to this flush are applied (their refcount blocks read first) and
// the freed clusters punched out of the file.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/block_device.h"
#include "storage/qcow2_metadata.h"
#include "storage/raw_image.h"

namespace strata::storage::qcow2 {

class Writeback {
 public:
  // `file` is the buffered view of the image file (metadata is small and unaligned).
  Writeback(Metadata& meta, RawImage& file) : meta_(meta), file_(file) {}

  // Runs one flush; `done` gets 0 or a negative errno. The tables must not
  // change until then (the image holds every request off during a flush).
  void start(IoCompletion done);
  // The same steps with pwrite/fallocate/fdatasync, for the image's destructor,
  // which cannot wait for the loop. A second round writes the refcount drops
  // the first applied, if any.
  Result<void> runBlocking();

 private:
  using Phase = Metadata::Phase;
  void runPhase(size_t index);
  void writePhase(size_t index, std::vector<Metadata::DirtyWrite> writes);
  void syncThen(std::function<void()> next);
  void loadReleasedRefblocks();
  void applyReleases();
  void finish(int result);
  Result<void> syncBlocking();

  Metadata& meta_;
  RawImage& file_;
  IoCompletion done_;
  bool synced_ = false;  // a sync ran in this flush (data written before it is durable)
  unsigned outstanding_ = 0;
  int status_ = 0;
};

}  // namespace strata::storage::qcow2
