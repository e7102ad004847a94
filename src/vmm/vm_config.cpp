#include "vmm/vm_config.h"

#include <cctype>

#include <fmt/core.h>

#include "storage/volume/volume_disk.h"

namespace strata::vmm {

Result<DiskConfig> parseDiskConfig(const std::string& text) {
  DiskConfig disk;
  size_t comma = text.find(',');
  disk.path = text.substr(0, comma);
  if (disk.path.empty()) return Error{"--disk: missing path"};
  while (comma != std::string::npos) {
    size_t next = text.find(',', comma + 1);
    std::string option = text.substr(comma + 1, next == std::string::npos ? std::string::npos : next - comma - 1);
    if (option == "readonly" || option == "ro") {
      disk.readOnly = true;
    } else if (option.rfind("format=", 0) == 0) {
      auto format = storage::parseFormatName(option.substr(7));
      if (!format) return Error{fmt::format("--disk {}: {}", text, format.error().message)};
      disk.format = *format;
    } else {
      return Error{fmt::format("--disk {}: unknown option '{}' (expected readonly or format=raw|qcow2)", text, option)};
    }
    comma = next;
  }
  if (disk.format != storage::ImageFormat::Auto && storage::volume::isVolumeDiskSpec(disk.path))
    return Error{fmt::format("--disk {}: format= applies to image files; a pool volume has no format", text)};
  return disk;
}

Result<uint64_t> parseByteSize(const std::string& text, std::string_view option) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return Error{fmt::format("{} {}: expected a size such as 256M or 1G", option, text)};
  uint64_t value = std::stoull(text.substr(0, digits));
  std::string suffix = text.substr(digits);
  unsigned shift = 0;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") shift = 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB") shift = 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB") shift = 30;
  else if (!suffix.empty()) return Error{fmt::format("{} {}: unknown unit '{}'", option, text, suffix)};
  else if (value < (1u << 20)) shift = 20;  // a bare small number means MiB, as QEMU's -m does
  uint64_t bytes = value << shift;
  if ((bytes >> shift) != value || bytes > (64ull << 30))
    return Error{fmt::format("{} {}: must be at most 64G", option, text)};
  return bytes;
}

Result<uint64_t> parseMemorySize(const std::string& text) {
  auto bytes = parseByteSize(text, "--mem");
  if (bytes && *bytes < (1u << 20)) return Error{fmt::format("--mem {}: must be between 1M and 64G", text)};
  return bytes;
}

}  // namespace strata::vmm
