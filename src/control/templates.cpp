#include "control/templates.h"

#include <fmt/core.h>

#include "base/event_loop.h"
#include "storage/image_create.h"

namespace strata::control {

Result<TemplateSource> inspectTemplateSource(const std::string& path, const std::string& format,
                                             const PathPolicy& policy) {
  auto resolved = checkedFile("path", path, policy);
  if (!resolved) return resolved.error();
  auto info = storage::imageInfo(*resolved);
  if (!info) return Error{fmt::format("path: {}", info.error().message)};
  if (!format.empty()) {
    auto asked = storage::parseFormatName(format);
    if (!asked || *asked == storage::ImageFormat::Auto) return Error{"format: expected raw or qcow2"};
    if (*asked != info->format)
      return Error{fmt::format("format: {} is {}, not {}", path, storage::formatName(info->format), format)};
  }
  if (info->corrupt) return Error{fmt::format("path: {} is marked corrupt", path)};
  if (!info->backingFile.empty() && !policy.admin)
    return Error{fmt::format("path: {} has a backing file; import a self-contained image", path)};
  if (info->virtualSize == 0) return Error{fmt::format("path: {} is empty", path)};
  return TemplateSource{*resolved, info->format, info->virtualSize};
}

Result<void> importTemplateImage(const TemplateSource& source, const std::string& target,
                                 const storage::ProgressCallback& progress) {
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  storage::ConvertOptions options;
  options.sourceFormat = source.format;
  options.target.format = storage::ImageFormat::Qcow2;
  return storage::convertImage(source.path, target, options, **loop, progress);
}

Result<void> createLinkedClone(const std::string& templatePath, uint64_t virtualSize, const std::string& overlayPath) {
  storage::CreateOptions options;
  options.format = storage::ImageFormat::Qcow2;
  options.size = virtualSize;
  options.backingFile = templatePath;
  options.backingFormat = storage::ImageFormat::Qcow2;
  return storage::createImage(overlayPath, options);
}

}  // namespace strata::control
