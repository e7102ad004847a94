// StateWriter / StateReader: the snapshot state file format. Devices and harts
// write their state into named, versioned sections; the file frames them with
// a magic, a format version and a CRC-32 of everything after the header, so a
// truncated, damaged or foreign file is refused before any device reads it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/result.h"

namespace strata {

// File layout (little-endian): "STRATAST" | u32 format version | u32 crc32 of
// the payload | u64 payload length | payload. Payload: sections, each
// u16 name length | name | u32 section version | u64 body length | body.
inline constexpr uint32_t kStateFormatVersion = 1;

class StateWriter {
 public:
  // Sections do not nest; each begin is closed by endSection.
  void beginSection(std::string_view name, uint32_t version);
  void endSection();

  template <typename T>
    requires std::is_integral_v<T> || std::is_enum_v<T>
  void put(T value) {
    putRaw(&value, sizeof value);
  }
  void putBytes(std::span<const uint8_t> bytes);  // length-prefixed
  // An array of integers, read back by getArrayInto into an array of the same length.
  template <typename T>
    requires std::is_integral_v<T>
  void putArray(std::span<const T> values) {
    putBytes({reinterpret_cast<const uint8_t*>(values.data()), values.size_bytes()});
  }
  void putString(std::string_view text);          // length-prefixed

  // The framed file contents.
  std::vector<uint8_t> finish() const;
  Result<void> writeFile(const std::string& path) const;

 private:
  void putRaw(const void* data, size_t size);
  std::vector<uint8_t> payload_;
  size_t openSectionLengthAt_ = 0;  // 0: no open section
};

// Reads are bounds-checked and sticky: the first failure (a read past the
// section, a bad value a device reports through fail()) makes every later
// read return zero, and status() carries the first error.
class StateReader {
 public:
  // Checks the framing, format version and checksum; indexes the sections.
  static Result<StateReader> parse(std::vector<uint8_t> file);
  // The same over the file, mapped read-only (the file must not shrink while a reader lives).
  static Result<StateReader> readFile(const std::string& path);

  bool hasSection(std::string_view name) const { return sections_.count(std::string(name)) != 0; }
  // Positions the reader at the start of the section's body. Fails if the
  // section is missing or its version is newer than maxVersion; returns the
  // section's version.
  Result<uint32_t> enterSection(std::string_view name, uint32_t maxVersion);
  // Checks that the section was read whole and without error.
  Result<void> leaveSection();

  template <typename T>
    requires std::is_integral_v<T> || std::is_enum_v<T>
  T get() {
    T value{};
    getRaw(&value, sizeof value);
    return value;
  }
  // Length-prefixed; at most maxLength bytes (larger is a format error).
  std::vector<uint8_t> getBytes(size_t maxLength);
  std::string getString(size_t maxLength);
  // Reads exactly out.size() bytes written by putBytes (a length mismatch fails).
  void getBytesInto(std::span<uint8_t> out);
  template <typename T>
    requires std::is_integral_v<T>
  void getArrayInto(std::span<T> out) {
    getBytesInto({reinterpret_cast<uint8_t*>(out.data()), out.size_bytes()});
  }

  // Records a device's verdict on a value it read ("queue size 3 is not a power of two").
  void fail(std::string message);
  bool ok() const { return error_.empty(); }
  Result<void> status() const;

 private:
  struct Section {
    uint32_t version;
    size_t begin, end;
  };
  static Result<StateReader> index(std::span<const uint8_t> file, std::shared_ptr<const void> owner);
  void getRaw(void* out, size_t size);
  std::span<const uint8_t> file_;  // owner_'s bytes: a vector or a mapping
  std::shared_ptr<const void> owner_;
  std::map<std::string, Section> sections_;
  std::string current_;
  size_t cursor_ = 0, end_ = 0;
  std::string error_;
};

}  // namespace strata
