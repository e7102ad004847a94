#include "control/vm_spec.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace strata::control {
namespace {

using nlohmann::json;

constexpr unsigned kMaxCpus = 8;  // what `strata run --cpus` accepts
constexpr uint64_t kMinMemoryMib = 16, kMaxMemoryMib = 64 * 1024;
constexpr size_t kMaxDisks = 8, kMaxNets = 8, kMaxAppend = 1024;
constexpr uint64_t kGib = uint64_t{1} << 30;

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

Result<std::string> stringField(const json& object, const char* field) {
  if (!object.contains(field)) return std::string{};
  if (!object[field].is_string()) return Error{fmt::format("{}: expected a string", field)};
  return object[field].get<std::string>();
}

Result<uint64_t> numberField(const json& object, const char* field, uint64_t fallback, uint64_t min, uint64_t max) {
  if (!object.contains(field)) return fallback;
  auto value = nonNegativeInteger(object[field]);
  if (!value || *value < min || *value > max)
    return Error{fmt::format("{}: expected an integer from {} to {}", field, min, max)};
  return *value;
}

Result<void> onlyKnownFields(const json& object, std::initializer_list<const char*> known, const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const char* name : known) found = found || key == name;
    if (!found) return Error{fmt::format("{}unknown field '{}'", where, key)};
  }
  return {};
}

Result<DiskSpec> parseDisk(const json& value, size_t index, const PathPolicy& policy) {
  std::string where = fmt::format("disks[{}]", index);
  if (!value.is_object()) return Error{where + ": expected an object {\"path\": ...}"};
  if (auto known = onlyKnownFields(value, {"path", "format", "readonly", "volume"}, where + ": "); !known)
    return known.error();
  DiskSpec disk;
  if (value.contains("volume")) {  // the daemon resolves it (and checks who owns it)
    auto volume = stringField(value, "volume");
    if (!volume || !isValidName(*volume) || value.contains("path") || value.contains("format"))
      return Error{where + ".volume: expected a volume's name (and no path or format)"};
    disk.volume = *volume;
  } else {
    auto path = stringField(value, "path");
    if (!path) return Error{where + "." + path.error().message};
    auto resolved = checkedFile(where + ".path", *path, policy);
    if (!resolved) return resolved.error();
    disk.path = *resolved;
  }
  auto format = stringField(value, "format");
  if (!format || (!format->empty() && *format != "raw" && *format != "qcow2"))
    return Error{where + ".format: expected raw or qcow2"};
  disk.format = *format;
  if (value.contains("readonly")) {
    if (!value["readonly"].is_boolean()) return Error{where + ".readonly: expected true or false"};
    disk.readOnly = value["readonly"].get<bool>();
  }
  return disk;
}

Result<std::string> parseNet(const json& value, size_t index, const PathPolicy& policy) {
  std::string where = fmt::format("nets[{}]", index);
  if (!value.is_string()) return Error{where + ": expected a string such as \"network=NAME\""};
  std::string net = value.get<std::string>();
  if (net.rfind("network=", 0) == 0) {
    if (!isValidName(net.substr(8))) return Error{where + ": expected network=NAME, a network's name"};
    return net;
  }
  // A raw switch port could join any VLAN of the daemon's host switch: tenants get daemon networks only.
  bool isSwitch = net.rfind("switch=", 0) == 0, isTap = net.rfind("tap=", 0) == 0;
  if (!policy.admin || (!isSwitch && !isTap))
    return Error{fmt::format("{}: expected network=NAME{}", where,
                             policy.admin ? ", switch=NAME[,vlan=N|,trunk=..][,mac=..] or tap=NAME" : "")};
  for (char c : net)
    if (!isNameChar(c) && c != '=' && c != ',' && c != ':' && c != '.')
      return Error{fmt::format("{}: unexpected character '{}'", where, c)};
  return net;
}

}  // namespace

// A comma would be read as an option separator by `strata run`, so none is allowed.
Result<std::string> checkedFile(const std::string& field, const std::string& path, const PathPolicy& policy) {
  if (path.empty() || path.front() != '/') return Error{fmt::format("{}: expected an absolute path", field)};
  if (path.find(',') != std::string::npos) return Error{fmt::format("{}: a path may not contain ','", field)};
  char resolved[PATH_MAX];
  if (!::realpath(path.c_str(), resolved)) return Error{fmt::format("{}: {} does not exist", field, path)};
  struct stat st;
  if (::stat(resolved, &st) != 0 || !S_ISREG(st.st_mode))
    return Error{fmt::format("{}: {} is not a regular file", field, path)};
  if (!policy.admin) {
    char dir[PATH_MAX];
    std::string root = ::realpath(policy.tenantDir.c_str(), dir) ? std::string(dir) + "/" : std::string{};
    if (root.empty() || std::string(resolved).rfind(root, 0) != 0)
      return Error{fmt::format("{}: {} is outside the tenant's directory {}", field, path, policy.tenantDir)};
  }
  return std::string(resolved);
}

std::optional<uint64_t> nonNegativeInteger(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  return std::nullopt;
}

bool isValidName(const std::string& name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.front() == '_') return false;
  for (char c : name)
    if (!isNameChar(c)) return false;
  return true;
}

Result<VmSpec> parseVmSpec(const json& object, const std::string& tenant, const PathPolicy& policy) {
  if (!object.is_object()) return Error{"expected a JSON object"};
  if (auto known = onlyKnownFields(
          object, {"name", "tenant", "cpus", "memory_mib", "kernel", "initrd", "append", "disks", "nets", "template"},
          "");
      !known)
    return known.error();
  VmSpec spec;
  spec.tenant = tenant;
  auto name = stringField(object, "name");
  if (!name) return name.error();
  if (!isValidName(*name)) return Error{"name: expected 1-63 letters, digits, '-' or '_' (not first)"};
  spec.name = *name;
  auto templateName = stringField(object, "template");
  if (!templateName) return templateName.error();
  if (object.contains("template") && !isValidName(*templateName))
    return Error{"template: expected a template's name (1-63 letters, digits, '-' or '_')"};
  spec.templateName = *templateName;
  auto cpus = numberField(object, "cpus", 1, 1, kMaxCpus);
  if (!cpus) return cpus.error();
  spec.cpus = static_cast<unsigned>(*cpus);
  auto memory = numberField(object, "memory_mib", 256, kMinMemoryMib, kMaxMemoryMib);
  if (!memory) return memory.error();
  spec.memoryMib = *memory;
  for (auto [field, target] : {std::pair{"kernel", &spec.kernel}, std::pair{"initrd", &spec.initrd}}) {
    auto path = stringField(object, field);
    if (!path) return path.error();
    if (path->empty()) continue;
    auto resolved = checkedFile(field, *path, policy);
    if (!resolved) return resolved.error();
    *target = *resolved;
  }
  if (spec.kernel.empty() && !spec.initrd.empty()) return Error{"initrd: needs a kernel (the default guest has its own)"};
  auto append = stringField(object, "append");
  if (!append) return append.error();
  if (append->size() > kMaxAppend) return Error{fmt::format("append: longer than {} bytes", kMaxAppend)};
  for (char c : *append)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return Error{"append: control characters are not allowed"};
  spec.append = *append;
  if (object.contains("disks")) {
    const json& disks = object["disks"];
    if (!disks.is_array() || disks.size() > kMaxDisks)
      return Error{fmt::format("disks: expected an array of at most {} disks", kMaxDisks)};
    for (size_t i = 0; i < disks.size(); ++i) {
      auto disk = parseDisk(disks[i], i, policy);
      if (!disk) return disk.error();
      struct stat st;
      if (::stat(disk->path.c_str(), &st) == 0) spec.diskGib += (static_cast<uint64_t>(st.st_size) + kGib - 1) / kGib;
      spec.disks.push_back(*disk);
    }
  }
  if (object.contains("nets")) {
    const json& nets = object["nets"];
    if (!nets.is_array() || nets.size() > kMaxNets)
      return Error{fmt::format("nets: expected an array of at most {} strings", kMaxNets)};
    for (size_t i = 0; i < nets.size(); ++i) {
      auto net = parseNet(nets[i], i, policy);
      if (!net) return net.error();
      if (net->rfind("network=", 0) == 0) spec.networks.push_back(net->substr(8));
      else spec.nets.push_back(*net);
    }
  }
  return spec;
}

json toJson(const VmSpec& spec) {
  json disks = json::array();
  for (const auto& disk : spec.disks) {
    disks.push_back({{"path", disk.path}, {"format", disk.format}, {"readonly", disk.readOnly}});
    if (!disk.volume.empty()) disks.back()["volume"] = disk.volume;
  }
  return {{"name", spec.name},     {"tenant", spec.tenant}, {"cpus", spec.cpus},     {"memory_mib", spec.memoryMib},
          {"kernel", spec.kernel}, {"initrd", spec.initrd}, {"append", spec.append}, {"disks", disks},
          {"nets", spec.nets},     {"networks", spec.networks}, {"disk_gib", spec.diskGib},
          {"template", spec.templateName}, {"restore_from", spec.restoreFrom}};
}

VmSpec vmSpecFromStored(const std::string& name, const std::string& tenant, const std::string& storedJson) {
  json stored = json::parse(storedJson);
  VmSpec spec;
  spec.name = name;
  spec.tenant = tenant;
  spec.cpus = stored.at("cpus").get<unsigned>();
  spec.memoryMib = stored.at("memory_mib").get<uint64_t>();
  spec.kernel = stored.at("kernel").get<std::string>();
  spec.initrd = stored.at("initrd").get<std::string>();
  spec.append = stored.at("append").get<std::string>();
  for (const auto& disk : stored.at("disks"))
    spec.disks.push_back({disk.at("path").get<std::string>(), disk.at("format").get<std::string>(),
                          disk.at("readonly").get<bool>(), disk.value("volume", "")});
  spec.nets = stored.at("nets").get<std::vector<std::string>>();
  spec.networks = stored.value("networks", std::vector<std::string>{});
  spec.diskGib = stored.at("disk_gib").get<uint64_t>();
  spec.templateName = stored.value("template", "");  // absent in definitions stored before templates existed
  spec.restoreFrom = stored.value("restore_from", "");
  return spec;
}

bool resumesSnapshot(const VmSpec& spec) {
  struct stat st;
  return !spec.restoreFrom.empty() && (spec.disks.empty() || ::stat(spec.disks[0].path.c_str(), &st) != 0);
}

std::vector<std::string> runArguments(const VmSpec& spec, const std::string& apiSocket, const std::string& consoleFile,
                                      bool resume) {
  std::vector<std::string> args{"run", "--api-socket", apiSocket, "--console", "file=" + consoleFile};
  if (resume) {  // the board is the snapshot's
    std::string cloneDir = spec.disks.empty() ? std::string{} : spec.disks[0].path.substr(0, spec.disks[0].path.rfind('/'));
    args.insert(args.end(), {"--restore", spec.restoreFrom, "--clone"});
    if (!cloneDir.empty()) args.insert(args.end(), {"--clone-dir", cloneDir});
    return args;
  }
  args.insert(args.end(), {"--cpus", std::to_string(spec.cpus), "--mem", std::to_string(spec.memoryMib) + "M"});
  if (!spec.kernel.empty()) args.insert(args.end(), {"--kernel", spec.kernel});
  if (!spec.initrd.empty()) args.insert(args.end(), {"--initrd", spec.initrd});
  if (!spec.append.empty()) args.insert(args.end(), {"--append", spec.append});
  for (const auto& disk : spec.disks) {
    std::string text = disk.path;
    if (!disk.format.empty()) text += ",format=" + disk.format;
    if (disk.readOnly) text += ",readonly";
    args.insert(args.end(), {"--disk", text});
  }
  for (const auto& net : spec.nets) args.insert(args.end(), {"--net", net});
  return args;
}

}  // namespace strata::control
