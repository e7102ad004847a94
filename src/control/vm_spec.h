// VmSpec: what a VM definition holds (the JSON a client POSTs to /vms), its
// validation (an API client is untrusted: every field is checked, unknown ones
// refused), and the `strata run` command line the supervisor starts it with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"

namespace strata::control {

struct DiskSpec {
  std::string path;
  std::string format;  // "", "raw" or "qcow2"
  bool readOnly = false;
  std::string volume;  // a daemon volume ({"volume": NAME}); its path "pool:POOL/NAME" is set once resolved
};

struct VmSpec {
  std::string name, tenant;
  unsigned cpus = 1;
  uint64_t memoryMib = 256;
  std::string kernel, initrd, append;  // empty kernel: the default guest
  std::vector<DiskSpec> disks;
  std::vector<std::string> nets;  // `strata run --net` values: switch=NAME[,...] and tap=NAME (admins only)
  // Daemon networks ("network=NAME" in the request), each a NIC; resolved into nets at definition.
  std::vector<std::string> networks;
  uint64_t diskGib = 0;           // sum of the disks' sizes, rounded up; what the disk quota counts
  std::string templateName;       // made as a linked clone of this template (its first disk is the clone)
  // Made from a snapshot (a template's or a VM's): the first start resumes it
  // (`strata run --restore DIR --clone`), which makes the disks; later starts boot them.
  std::string restoreFrom;
};

// Whether the next start resumes the snapshot: its clone disk is not made yet
// (a VM without disks keeps no state of its own: each start resumes it).
bool resumesSnapshot(const VmSpec& spec);

// What a VM definition costs against its tenant's quota.
struct ResourceUse {
  uint64_t vms = 0, vcpus = 0, memoryMib = 0, diskGib = 0, networks = 0;
};
inline ResourceUse resourcesOf(const VmSpec& spec) { return {1, spec.cpus, spec.memoryMib, spec.diskGib}; }

// A JSON number that is a non-negative integer, or nullopt.
std::optional<uint64_t> nonNegativeInteger(const nlohmann::json& value);

// Names of VMs and tenants: 1-63 of [A-Za-z0-9_-], starting with a letter or digit,
// so a name is always safe as a path component and in a URL.
bool isValidName(const std::string& name);

// Who may reference which host files: an admin any absolute path, a tenant only
// files under its own directory (DATADIR/tenants/TENANT/).
struct PathPolicy {
  bool admin = false;
  std::string tenantDir;
};

// Resolves a host file the daemon or a VM will open, refusing what the caller
// may not use (outside its directory, not a regular file); `field` names it in errors.
Result<std::string> checkedFile(const std::string& field, const std::string& path, const PathPolicy& policy);

// Parses and checks a definition; `tenant` is the owner the caller resolved.
// Errors say which field is wrong and why.
Result<VmSpec> parseVmSpec(const nlohmann::json& json, const std::string& tenant, const PathPolicy& policy);

nlohmann::json toJson(const VmSpec& spec);
// Reads back what toJson stored (trusted: it came from the daemon's own database).
VmSpec vmSpecFromStored(const std::string& name, const std::string& tenant, const std::string& storedJson);

// `strata run ...` arguments (without the binary) that boot this VM with its API
// socket and console file, or with `resume` that resume its snapshot as a clone
// whose disk overlays go beside its first disk.
std::vector<std::string> runArguments(const VmSpec& spec, const std::string& apiSocket, const std::string& consoleFile,
                                      bool resume = false);

}  // namespace strata::control
