// Templates: disk images imported once into the daemon's own qcow2 copy
// (DATADIR/templates/NAME.qcow2) that VMs are made from as linked clones: a
// VM's disk is a qcow2 overlay backed by the template, so making one copies nothing.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "control/vm_spec.h"
#include "storage/image_tools.h"

namespace strata::control {

struct TemplateSource {
  std::string path;  // resolved
  storage::ImageFormat format = storage::ImageFormat::Raw;
  uint64_t virtualSize = 0;
};

// Checks a file a client asks to import: one the caller may use (PathPolicy),
// raw or an intact qcow2 in the format asked ("" probes), and for a tenant no
// backing file (which could name any file on the host).
Result<TemplateSource> inspectTemplateSource(const std::string& path, const std::string& format,
                                             const PathPolicy& policy);

// Copies the source's guest-visible content into a new qcow2 at target.
Result<void> importTemplateImage(const TemplateSource& source, const std::string& target,
                                 const storage::ProgressCallback& progress);

// A new qcow2 at overlayPath, as large as the template and backed by it.
Result<void> createLinkedClone(const std::string& templatePath, uint64_t virtualSize, const std::string& overlayPath);

}  // namespace strata::control
