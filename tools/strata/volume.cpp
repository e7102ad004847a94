// `strata volume`: create, list, resize, snapshot, clone, rename and remove
// logical volumes in a pool. Volumes are named POOL/VOLUME; a VM uses one as
// `--disk pool:POOL/VOLUME`.
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "commands.h"
#include "storage/image_create.h"
#include "storage/volume/pool_report.h"
#include "storage/volume/volume_disk.h"

namespace strata::cli {

namespace {

using namespace storage::volume;

int fail(const std::string& message) {
  std::fprintf(stderr, "strata volume: %s\n", message.c_str());
  return 1;
}

std::unique_ptr<EventLoop> makeLoop() {
  auto loop = EventLoop::create();
  if (!loop) return nullptr;
  return std::move(*loop);
}

struct VolumeName {
  std::string pool;
  std::string volume;
};

Result<VolumeName> parseVolumeName(const std::string& text) {
  std::string spec = text.rfind("pool:", 0) == 0 ? text.substr(5) : text;
  size_t slash = spec.find('/');
  if (slash == std::string::npos) return Error{fmt::format("'{}': expected POOL/VOLUME", text)};
  VolumeName name{spec.substr(0, slash), spec.substr(slash + 1)};
  if (auto n = checkName("pool", name.pool); !n) return n.error();
  if (auto n = checkName("volume", name.volume); !n) return n.error();
  return name;
}

// Opens the pool of POOL/VOLUME for writing; reports failures itself.
struct Opened {
  std::unique_ptr<EventLoop> loop;
  std::shared_ptr<Pool> pool;
  VolumeName name;
};
Result<Opened> openFor(const std::string& text, const std::vector<std::string>& pvs, bool readOnly = false) {
  auto name = parseVolumeName(text);
  if (!name) return name.error();
  Opened opened{makeLoop(), nullptr, *name};
  if (!opened.loop) return Error{"cannot create an event loop"};
  auto pool = openPoolByName(name->pool, pvs, {.readOnly = readOnly}, *opened.loop);
  if (!pool) return pool.error();
  opened.pool = *pool;
  return opened;
}

struct CreateArgs {
  std::string name;
  std::string size;
  std::string type = "linear";
  uint32_t stripes = 0;
  std::string stripeSize = "64K";
  uint32_t mirrors = 2;
  std::string thinPool;
  std::string chunkSize = "64K";
  std::string metadataSize;
  std::string dataType = "linear";
  std::vector<std::string> pvs;
};

int runCreate(const CreateArgs& args) {
  VolumeCreateOptions options;
  auto type = parseVolumeType(args.type);
  if (!type) return fail(type.error().message);
  options.type = *type;
  auto size = storage::parseSize(args.size);
  if (!size) return fail(size.error().message);
  options.sizeBytes = *size;
  auto stripeSize = storage::parseSize(args.stripeSize);
  if (!stripeSize || *stripeSize > UINT32_MAX) return fail("invalid --stripe-size '" + args.stripeSize + "'");
  options.stripeSize = static_cast<uint32_t>(*stripeSize);
  auto chunkSize = storage::parseSize(args.chunkSize);
  if (!chunkSize || *chunkSize > UINT32_MAX) return fail("invalid --chunk-size '" + args.chunkSize + "'");
  options.chunkSize = static_cast<uint32_t>(*chunkSize);
  if (!args.metadataSize.empty()) {
    auto meta = storage::parseSize(args.metadataSize);
    if (!meta) return fail(meta.error().message);
    options.metadataSize = *meta;
  }
  auto dataType = parseVolumeType(args.dataType);
  if (!dataType) return fail(dataType.error().message);
  options.dataType = *dataType;
  options.stripes = args.stripes;
  options.mirrors = args.mirrors;
  options.thinPool = args.thinPool;
  if (options.type == VolumeType::Thin && args.thinPool.empty()) return fail("a thin volume needs --thin-pool NAME");
  if (options.type != VolumeType::Thin && !args.thinPool.empty())
    return fail("--thin-pool applies to --type thin only");

  auto opened = openFor(args.name, args.pvs);
  if (!opened) return fail(opened.error().message);
  auto created = opened->pool->createVolume(opened->name.volume, options);
  if (!created) return fail(created.error().message);
  std::printf("created %s volume %s/%s: %s\n", volumeTypeName((*created)->type), opened->name.pool.c_str(),
              opened->name.volume.c_str(), formatBytes((*created)->sizeBytes).c_str());
  return 0;
}

int runList(const std::string& poolName, bool all, const std::vector<std::string>& pvs) {
  std::vector<std::string> names;
  if (!poolName.empty() || !pvs.empty())
    names.push_back(poolName);
  else
    names = listRegisteredPools();
  if (names.empty()) return fail(fmt::format("no pools registered in {}", poolRegistryDir()));
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  int code = 0;
  for (const auto& name : names) {
    auto pool = openPoolByName(name, pvs, {.readOnly = true}, *loop);
    if (!pool) {
      code = fail(pool.error().message);
      continue;
    }
    if (names.size() > 1) std::printf("pool %s:\n", (*pool)->name().c_str());
    std::fputs(formatVolumeList(**pool, all).c_str(), stdout);
  }
  return code;
}

int runResize(const std::string& text, const std::string& sizeText, bool force, const std::vector<std::string>& pvs) {
  auto opened = openFor(text, pvs);
  if (!opened) return fail(opened.error().message);
  const VolumeRecord* v = opened->pool->record().findVolume(opened->name.volume);
  if (!v) return fail(fmt::format("pool {} has no volume named {}", opened->name.pool, opened->name.volume));
  bool relative = !sizeText.empty() && (sizeText[0] == '+' || sizeText[0] == '-');
  auto amount = storage::parseSize(relative ? sizeText.substr(1) : sizeText);
  if (!amount) return fail(amount.error().message);
  uint64_t size = *amount;
  if (relative) {
    if (sizeText[0] == '-' && *amount >= v->sizeBytes) return fail("cannot shrink a volume to zero or less");
    size = sizeText[0] == '+' ? v->sizeBytes + *amount : v->sizeBytes - *amount;
  }
  if (auto resized = opened->pool->resizeVolume(opened->name.volume, size, force); !resized)
    return fail(resized.error().message);
  v = opened->pool->record().findVolume(opened->name.volume);
  std::printf("volume %s/%s is now %s\n", opened->name.pool.c_str(), opened->name.volume.c_str(),
              formatBytes(v->sizeBytes).c_str());
  return 0;
}

int runSnapshot(const std::string& origin, const std::string& name, bool writable, const std::vector<std::string>& pvs) {
  auto opened = openFor(origin, pvs);
  if (!opened) return fail(opened.error().message);
  if (auto made = opened->pool->snapshotVolume(opened->name.volume, name, writable); !made)
    return fail(made.error().message);
  std::printf("%s %s/%s of %s created\n", writable ? "clone" : "snapshot", opened->name.pool.c_str(), name.c_str(),
              opened->name.volume.c_str());
  return 0;
}

int runRemove(const std::string& text, const std::vector<std::string>& pvs) {
  auto opened = openFor(text, pvs);
  if (!opened) return fail(opened.error().message);
  if (auto removed = opened->pool->removeVolume(opened->name.volume); !removed) return fail(removed.error().message);
  std::printf("removed %s/%s\n", opened->name.pool.c_str(), opened->name.volume.c_str());
  return 0;
}

int runRename(const std::string& text, const std::string& to, const std::vector<std::string>& pvs) {
  auto opened = openFor(text, pvs);
  if (!opened) return fail(opened.error().message);
  if (auto renamed = opened->pool->renameVolume(opened->name.volume, to); !renamed) return fail(renamed.error().message);
  std::printf("renamed %s/%s to %s\n", opened->name.pool.c_str(), opened->name.volume.c_str(), to.c_str());
  return 0;
}

void addPvOption(CLI::App* command, std::vector<std::string>& pvs) {
  command->add_option("--pv", pvs, "A physical volume of the pool (repeat; default: the pool registry)");
}

}  // namespace

void addVolumeCommands(CLI::App& app, CommandStatus& status) {
  auto* volume = app.add_subcommand("volume", "Logical volumes: linear, striped, mirror, raid5, raid10, thin");
  volume->require_subcommand(1);

  auto create = std::make_shared<CreateArgs>();
  auto* createCommand = volume->add_subcommand("create", "Create a volume (sizes round up to whole extents)");
  createCommand->add_option("name", create->name, "POOL/VOLUME")->required();
  createCommand->add_option("-s,--size", create->size, "Size, e.g. 10G (thin-pool: its data size)")->required();
  createCommand->add_option("-t,--type", create->type, "linear, striped, mirror, raid5, raid10, thin-pool or thin")
      ->capture_default_str();
  createCommand->add_option("--stripes", create->stripes,
                            "Data stripes (striped/raid5/raid10; default: as many as the PVs allow)");
  createCommand->add_option("--stripe-size", create->stripeSize, "Stripe chunk, a power of two")->capture_default_str();
  createCommand->add_option("--mirrors", create->mirrors, "Copies of each block (mirror, raid10)")->capture_default_str();
  createCommand->add_option("--thin-pool", create->thinPool, "Thin pool to allocate from (--type thin)");
  createCommand->add_option("--chunk-size", create->chunkSize, "Thin pool allocation unit")->capture_default_str();
  createCommand->add_option("--metadata-size", create->metadataSize, "Thin pool metadata size (default: derived)");
  createCommand->add_option("--data-type", create->dataType, "Layout of a thin pool's data and metadata")
      ->capture_default_str();
  addPvOption(createCommand, create->pvs);
  createCommand->callback([&status, create] { status.exitCode = runCreate(*create); });

  struct ListArgs {
    std::string pool;
    bool all = false;
    std::vector<std::string> pvs;
  };
  auto list = std::make_shared<ListArgs>();
  auto* listCommand = volume->add_subcommand("list", "List volumes with size and real use");
  listCommand->alias("ls");
  listCommand->add_option("pool", list->pool, "Pool name (default: every registered pool)");
  listCommand->add_flag("-a,--all", list->all, "Include thin pools' internal volumes");
  addPvOption(listCommand, list->pvs);
  listCommand->callback([&status, list] { status.exitCode = runList(list->pool, list->all, list->pvs); });

  struct ResizeArgs {
    std::string name, size;
    bool force = false;
    std::vector<std::string> pvs;
  };
  auto resize = std::make_shared<ResizeArgs>();
  auto* resizeCommand = volume->add_subcommand("resize", "Grow a volume (shrinking needs --force)");
  resizeCommand->add_option("name", resize->name, "POOL/VOLUME")->required();
  resizeCommand->add_option("-s,--size", resize->size, "New size, or +N / -N relative")->required();
  resizeCommand->add_flag("-f,--force", resize->force, "Allow shrinking (discards the data past the new end)");
  addPvOption(resizeCommand, resize->pvs);
  resizeCommand->callback([&status, resize] {
    status.exitCode = runResize(resize->name, resize->size, resize->force, resize->pvs);
  });

  struct SnapshotArgs {
    std::string origin, name;
    std::vector<std::string> pvs;
  };
  for (bool writable : {false, true}) {
    auto args = std::make_shared<SnapshotArgs>();
    auto* command = volume->add_subcommand(
        writable ? "clone" : "snapshot",
        writable ? "Writable copy-on-write clone of a thin volume" : "Read-only copy-on-write snapshot of a thin volume");
    command->add_option("origin", args->origin, "POOL/VOLUME (a thin volume)")->required();
    command->add_option("name", args->name, "Name of the new volume")->required();
    addPvOption(command, args->pvs);
    command->callback([&status, args, writable] {
      status.exitCode = runSnapshot(args->origin, args->name, writable, args->pvs);
    });
  }

  struct RemoveArgs {
    std::string name;
    std::vector<std::string> pvs;
  };
  auto remove = std::make_shared<RemoveArgs>();
  auto* removeCommand = volume->add_subcommand("remove", "Remove a volume and free its space");
  removeCommand->alias("rm");
  removeCommand->add_option("name", remove->name, "POOL/VOLUME")->required();
  addPvOption(removeCommand, remove->pvs);
  removeCommand->callback([&status, remove] { status.exitCode = runRemove(remove->name, remove->pvs); });

  struct RenameArgs {
    std::string name, to;
    std::vector<std::string> pvs;
  };
  auto rename = std::make_shared<RenameArgs>();
  auto* renameCommand = volume->add_subcommand("rename", "Rename a volume");
  renameCommand->add_option("name", rename->name, "POOL/VOLUME")->required();
  renameCommand->add_option("new-name", rename->to, "New volume name")->required();
  addPvOption(renameCommand, rename->pvs);
  renameCommand->callback([&status, rename] { status.exitCode = runRename(rename->name, rename->to, rename->pvs); });
}

}  // namespace strata::cli
