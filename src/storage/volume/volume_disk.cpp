#include "storage/volume/volume_disk.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace strata::storage::volume {

std::string poolRegistryDir() {
  const char* dir = std::getenv("STRATA_POOL_DIR");
  return dir && *dir ? dir : "/var/lib/strata/pools";
}

std::string poolRegistryPath(const std::string& poolName) { return poolRegistryDir() + "/" + poolName + ".pvs"; }

Result<std::vector<std::string>> readPoolRegistry(const std::string& poolName) {
  if (auto n = checkName("pool", poolName); !n) return n.error();
  std::string path = poolRegistryPath(poolName);
  std::ifstream in(path);
  if (!in)
    return Error{fmt::format("pool {} is not registered ({}: {}); pass its physical volumes with --pv", poolName, path,
                             std::strerror(errno))};
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(in, line)) {
    size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    paths.push_back(line.substr(start));
  }
  if (paths.empty()) return Error{fmt::format("{} lists no physical volumes", path)};
  return paths;
}

Result<void> writePoolRegistry(const std::string& poolName, const std::vector<std::string>& pvPaths) {
  std::string dir = poolRegistryDir();
  // mkdir -p
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at == dir.size() || dir[at] == '/') {
      std::string prefix = dir.substr(0, at);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return errnoError(prefix);
    }
  }
  std::string path = poolRegistryPath(poolName);
  std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    if (!out) return errnoError(temp);
    out << "# physical volumes of strata pool " << poolName << "\n";
    for (const auto& pv : pvPaths) {
      char resolved[PATH_MAX];
      out << (::realpath(pv.c_str(), resolved) ? std::string(resolved) : pv) << "\n";
    }
    if (!out.flush()) return errnoError(temp);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) return errnoError(path);
  return {};
}

std::vector<std::string> listRegisteredPools() {
  std::vector<std::string> names;
  DIR* dir = ::opendir(poolRegistryDir().c_str());
  if (!dir) return names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".pvs") == 0) names.push_back(name.substr(0, name.size() - 4));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::shared_ptr<Pool>> openPoolByName(const std::string& poolName, const std::vector<std::string>& pvPaths,
                                             const PoolOpenOptions& options, EventLoop& loop) {
  std::vector<std::string> paths = pvPaths;
  if (paths.empty()) {
    auto registered = readPoolRegistry(poolName);
    if (!registered) return registered.error();
    paths = *registered;
  }
  auto pool = Pool::open(paths, options, loop);
  if (!pool) return Error{fmt::format("pool {}: {}", poolName, pool.error().message)};
  if (!poolName.empty() && (*pool)->name() != poolName)
    return Error{fmt::format("the physical volumes given hold pool {}, not {}", (*pool)->name(), poolName)};
  return pool;
}

bool isVolumeDiskSpec(const std::string& spec) { return spec.rfind("pool:", 0) == 0; }

Result<VolumeDiskSpec> parseVolumeDiskSpec(const std::string& spec) {
  if (!isVolumeDiskSpec(spec)) return Error{fmt::format("'{}' is not a pool:NAME/VOLUME disk", spec)};
  std::string rest = spec.substr(5);
  size_t slash = rest.find('/');
  if (slash == std::string::npos)
    return Error{fmt::format("'{}': expected pool:NAME/VOLUME", spec)};
  VolumeDiskSpec parsed{rest.substr(0, slash), rest.substr(slash + 1)};
  if (auto n = checkName("pool", parsed.pool); !n) return Error{fmt::format("'{}': {}", spec, n.error().message)};
  if (auto n = checkName("volume", parsed.volume); !n) return Error{fmt::format("'{}': {}", spec, n.error().message)};
  return parsed;
}

Result<std::shared_ptr<Pool>> openPoolOfDisk(const VolumeDiskSpec& spec, const DiskOptions& options, EventLoop& loop) {
  return openPoolByName(spec.pool, {}, {.readOnly = options.readOnly, .direct = options.direct}, loop);
}

Result<std::unique_ptr<BlockDevice>> openVolumeDisk(const std::string& spec, const DiskOptions& options,
                                                    EventLoop& loop) {
  auto parsed = parseVolumeDiskSpec(spec);
  if (!parsed) return parsed.error();
  auto pool = openPoolOfDisk(*parsed, options, loop);
  if (!pool) return pool.error();
  return (*pool)->openVolume(parsed->volume, options.readOnly);
}

Result<std::unique_ptr<BlockDevice>> openVolume(const std::vector<std::string>& pvPaths, const std::string& volume,
                                                const DiskOptions& options, EventLoop& loop) {
  auto pool = Pool::open(pvPaths, {.readOnly = options.readOnly, .direct = options.direct}, loop);
  if (!pool) return pool.error();
  return (*pool)->openVolume(volume, options.readOnly);
}

}  // namespace strata::storage::volume
