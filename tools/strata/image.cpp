// `strata image`: create, inspect, check, convert and commit virtual disk
// images, with the options and exit codes of qemu-img where they overlap.
#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "commands.h"
#include "storage/image_create.h"
#include "storage/image_tools.h"

namespace strata::cli {

namespace {

using storage::ImageFormat;

// Shows percentages on stderr: redrawn in place on a terminal; as a line every
// 10% when forced with -p onto a pipe, and every 10 s of a long run regardless,
// so CI logs still show that something is happening.
class ProgressReporter {
 public:
  explicit ProgressReporter(bool forced) : forced_(forced), terminal_(::isatty(STDERR_FILENO) == 1) {}

  void update(uint64_t done, uint64_t total) {
    double percent = total == 0 ? 100.0 : 100.0 * static_cast<double>(done) / static_cast<double>(total);
    auto now = std::chrono::steady_clock::now();
    if (terminal_) {
      if (percent - lastShown_ >= 1.0 || done == total || now - lastTime_ > std::chrono::milliseconds(500)) {
        std::fprintf(stderr, "\r    (%.2f/100%%)", percent);
        std::fflush(stderr);
        lastShown_ = percent;
        lastTime_ = now;
        drawn_ = true;
      }
      return;
    }
    bool step = forced_ && (percent - lastShown_ >= 10.0 || (done == total && lastShown_ < 100.0));
    bool slow = now - lastTime_ > std::chrono::seconds(10);
    if (step || slow) {
      std::fprintf(stderr, "    (%.2f/100%%)\n", percent);
      lastShown_ = percent;
      lastTime_ = now;
    }
  }
  void finish() {
    if (drawn_) std::fprintf(stderr, "\n");
  }

 private:
  bool forced_;
  bool terminal_;
  bool drawn_ = false;
  double lastShown_ = -100.0;
  std::chrono::steady_clock::time_point lastTime_ = std::chrono::steady_clock::now();
};

int fail(const std::string& message) {
  std::fprintf(stderr, "strata image: %s\n", message.c_str());
  return 1;
}

std::unique_ptr<EventLoop> makeLoop() {
  auto loop = EventLoop::create();
  if (!loop) return nullptr;
  return std::move(*loop);
}

// Parses "-o cluster_size=64K,refcount_bits=16" into the create options.
Result<void> applyCreateOptions(const std::string& text, storage::CreateOptions& options) {
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    size_t equals = item.find('=');
    if (equals == std::string::npos) return Error{"option '" + item + "' needs a value (name=value)"};
    std::string name = item.substr(0, equals);
    auto value = storage::parseSize(item.substr(equals + 1));
    if (!value) return Error{"option " + name + ": " + value.error().message};
    if (name == "cluster_size") {
      options.clusterSize = static_cast<uint32_t>(std::min<uint64_t>(*value, UINT32_MAX));
    } else if (name == "refcount_bits") {
      options.refcountBits = static_cast<uint32_t>(std::min<uint64_t>(*value, UINT32_MAX));
    } else {
      return Error{"unknown option '" + name + "' (supported: cluster_size, refcount_bits)"};
    }
  }
  return {};
}

struct CreateArgs {
  std::string format = "raw";
  std::string options;
  std::string backing;
  std::string backingFormat;
  std::string path;
  std::string size;
};

int runCreate(const CreateArgs& args) {
  storage::CreateOptions options;
  auto format = storage::parseFormatName(args.format);
  if (!format) return fail(format.error().message);
  options.format = *format;
  if (auto applied = applyCreateOptions(args.options, options); !applied) return fail(applied.error().message);
  if (!args.backing.empty()) {
    if (options.format != ImageFormat::Qcow2) return fail("a backing file needs -f qcow2");
    options.backingFile = args.backing;
    // The name is relative to the new image, as QEMU stores it.
    std::string directory = args.path.find('/') == std::string::npos ? "" : args.path.substr(0, args.path.find_last_of('/') + 1);
    std::string backingPath = args.backing[0] == '/' ? args.backing : directory + args.backing;
    if (!args.backingFormat.empty()) {
      auto backingFormat = storage::parseFormatName(args.backingFormat);
      if (!backingFormat) return fail(backingFormat.error().message);
      options.backingFormat = *backingFormat;
    } else {
      auto probed = storage::probeImageFormat(backingPath);
      if (!probed) return fail("backing file: " + probed.error().message);
      options.backingFormat = *probed;
    }
    if (args.size.empty()) {
      auto info = storage::imageInfo(backingPath);
      if (!info) return fail("backing file: " + info.error().message);
      options.size = info->virtualSize;
    }
  }
  if (!args.size.empty()) {
    auto size = storage::parseSize(args.size);
    if (!size) return fail(size.error().message);
    options.size = *size;
  } else if (args.backing.empty()) {
    return fail("image size required (e.g. 10G)");
  }
  auto created = storage::createImage(args.path, options);
  if (!created) return fail(created.error().message);
  std::printf("Formatting '%s', fmt=%s size=%llu\n", args.path.c_str(), storage::formatName(options.format),
              static_cast<unsigned long long>(options.size));
  return 0;
}

int runInfo(const std::string& path, const std::string& output) {
  auto info = storage::imageInfo(path);
  if (!info) return fail(info.error().message);
  std::fputs(output == "json" ? storage::formatInfoJson(*info).c_str() : storage::formatInfoText(*info).c_str(), stdout);
  return 0;
}

int runCheck(const std::string& path) {
  auto report = storage::checkImage(path);
  if (!report) {
    std::fprintf(stderr, "strata image: check failed: %s\n", report.error().message.c_str());
    return 1;
  }
  for (const auto& message : report->messages) std::fprintf(stderr, "%s\n", message.c_str());
  if (report->messagesOmitted > 0) {
    std::fprintf(stderr, "... and %llu more problems not listed\n",
                 static_cast<unsigned long long>(report->messagesOmitted));
  }
  if (report->corruptions > 0) {
    std::printf("\n%llu errors were found on the image.\nData may be corrupted, or further writes to the image "
                "may corrupt it.\n",
                static_cast<unsigned long long>(report->corruptions));
  }
  if (report->leaks > 0) {
    std::printf("\n%llu leaked clusters were found on the image.\nThis means waste of disk space, but no harm to "
                "data.\n",
                static_cast<unsigned long long>(report->leaks));
  }
  if (report->corruptions == 0 && report->leaks == 0) std::printf("No errors were found on the image.\n");
  if (report->totalClusters > 0) {
    std::printf("%llu/%llu = %.2f%% allocated\nImage end offset: %llu\n",
                static_cast<unsigned long long>(report->allocatedClusters),
                static_cast<unsigned long long>(report->totalClusters),
                100.0 * static_cast<double>(report->allocatedClusters) / static_cast<double>(report->totalClusters),
                static_cast<unsigned long long>(report->imageEndOffset));
  }
  return storage::checkExitCode(*report);
}

struct ConvertArgs {
  std::string sourceFormat;
  std::string targetFormat = "raw";
  std::string options;
  bool progress = false;
  std::string source;
  std::string target;
};

int runConvert(const ConvertArgs& args) {
  storage::ConvertOptions options;
  if (!args.sourceFormat.empty()) {
    auto format = storage::parseFormatName(args.sourceFormat);
    if (!format) return fail(format.error().message);
    options.sourceFormat = *format;
  }
  auto format = storage::parseFormatName(args.targetFormat);
  if (!format) return fail(format.error().message);
  options.target.format = *format;
  if (auto applied = applyCreateOptions(args.options, options.target); !applied) return fail(applied.error().message);
  auto loop = makeLoop();
  if (!loop) return fail("cannot create event loop");
  ProgressReporter reporter(args.progress);
  bool show = args.progress || ::isatty(STDERR_FILENO) == 1;
  auto converted = storage::convertImage(args.source, args.target, options, *loop,
                                         [&](uint64_t done, uint64_t total) {
                                           if (show) reporter.update(done, total);
                                         });
  reporter.finish();
  if (!converted) return fail(converted.error().message);
  return 0;
}

int runCommit(const std::string& path, bool progress) {
  auto loop = makeLoop();
  if (!loop) return fail("cannot create event loop");
  ProgressReporter reporter(progress);
  bool show = progress || ::isatty(STDERR_FILENO) == 1;
  auto committed = storage::commitImage(path, *loop, [&](uint64_t done, uint64_t total) {
    if (show) reporter.update(done, total);
  });
  reporter.finish();
  if (!committed) return fail(committed.error().message);
  std::printf("Image committed to %s (%llu bytes).\n", committed->backingPath.c_str(),
              static_cast<unsigned long long>(committed->bytesCommitted));
  return 0;
}

}  // namespace

void addImageCommands(CLI::App& app, CommandStatus& status) {
  auto* image = app.add_subcommand("image", "Create, inspect, check, convert and commit virtual disk images");
  image->require_subcommand(1);

  auto create = std::make_shared<CreateArgs>();
  auto* createCommand = image->add_subcommand("create", "Create a new raw or qcow2 image");
  createCommand->add_option("-f,--format", create->format, "Image format: raw or qcow2")->capture_default_str();
  createCommand->add_option("-o,--options", create->options, "Format options: cluster_size=N,refcount_bits=N");
  createCommand->add_option("-b,--backing", create->backing, "Backing file (makes a linked clone; qcow2 only)");
  createCommand->add_option("-F,--backing-format", create->backingFormat, "Backing file format (probed if omitted)");
  createCommand->add_option("path", create->path, "Image file to create")->required();
  createCommand->add_option("size", create->size, "Virtual size, e.g. 64M or 10G (default: backing file size)");
  createCommand->callback([&status, create] { status.exitCode = runCreate(*create); });

  auto infoPath = std::make_shared<std::string>();
  auto infoOutput = std::make_shared<std::string>("human");
  auto* infoCommand = image->add_subcommand("info", "Show format, sizes and backing file of an image");
  infoCommand->add_option("--output", *infoOutput, "Output format: human or json")
      ->check(CLI::IsMember({"human", "json"}));
  infoCommand->add_option("path", *infoPath, "Image file")->required();
  infoCommand->callback([&status, infoPath, infoOutput] { status.exitCode = runInfo(*infoPath, *infoOutput); });

  auto checkPath = std::make_shared<std::string>();
  auto* checkCommand = image->add_subcommand(
      "check", "Check qcow2 refcount consistency (exit 0 clean, 2 corruptions, 3 leaks, 1 check failed)");
  checkCommand->add_option("path", *checkPath, "Image file")->required();
  checkCommand->callback([&status, checkPath] { status.exitCode = runCheck(*checkPath); });

  auto convert = std::make_shared<ConvertArgs>();
  auto* convertCommand = image->add_subcommand("convert", "Copy an image into a new one, flattening backing files");
  convertCommand->add_option("-f,--source-format", convert->sourceFormat, "Source format (probed if omitted)");
  convertCommand->add_option("-O,--target-format", convert->targetFormat, "Target format: raw or qcow2")
      ->capture_default_str();
  convertCommand->add_option("-o,--options", convert->options, "Target format options: cluster_size=N");
  convertCommand->add_flag("-p,--progress", convert->progress, "Show progress even when stderr is not a terminal");
  convertCommand->add_option("source", convert->source, "Source image")->required();
  convertCommand->add_option("target", convert->target, "Target image (must not exist)")->required();
  convertCommand->callback([&status, convert] { status.exitCode = runConvert(*convert); });

  auto commitPath = std::make_shared<std::string>();
  auto commitProgress = std::make_shared<bool>(false);
  auto* commitCommand =
      image->add_subcommand("commit", "Write a linked clone's changes into its backing file (the clone keeps them)");
  commitCommand->add_flag("-p,--progress", *commitProgress, "Show progress even when stderr is not a terminal");
  commitCommand->add_option("path", *commitPath, "Overlay image")->required();
  commitCommand->callback([&status, commitPath, commitProgress] {
    status.exitCode = runCommit(*commitPath, *commitProgress);
  });
}

}  // namespace strata::cli
