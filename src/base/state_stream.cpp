#include "base/state_stream.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/crc32.h"
#include "base/unique_fd.h"

namespace strata {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'S', 'T'};
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8;
constexpr size_t kMaxNameLength = 256;

template <typename T>
void append(std::vector<uint8_t>& out, T value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof value);
}

template <typename T>
T loadAt(std::span<const uint8_t> in, size_t at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof value);
  return value;
}

}  // namespace

void StateWriter::beginSection(std::string_view name, uint32_t version) {
  append(payload_, static_cast<uint16_t>(name.size()));
  payload_.insert(payload_.end(), name.begin(), name.end());
  append(payload_, version);
  openSectionLengthAt_ = payload_.size();
  append(payload_, uint64_t{0});
}

void StateWriter::endSection() {
  uint64_t length = payload_.size() - openSectionLengthAt_ - sizeof(uint64_t);
  std::memcpy(payload_.data() + openSectionLengthAt_, &length, sizeof length);
  openSectionLengthAt_ = 0;
}

void StateWriter::putRaw(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  payload_.insert(payload_.end(), bytes, bytes + size);
}

void StateWriter::putBytes(std::span<const uint8_t> bytes) {
  put(static_cast<uint64_t>(bytes.size()));
  payload_.insert(payload_.end(), bytes.begin(), bytes.end());
}

void StateWriter::putString(std::string_view text) {
  putBytes({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

std::vector<uint8_t> StateWriter::finish() const {
  std::vector<uint8_t> file(kMagic, kMagic + sizeof kMagic);
  append(file, kStateFormatVersion);
  append(file, crc32Update(0, payload_.data(), payload_.size()));
  append(file, static_cast<uint64_t>(payload_.size()));
  file.insert(file.end(), payload_.begin(), payload_.end());
  return file;
}

Result<void> StateWriter::writeFile(const std::string& path) const {
  std::vector<uint8_t> file = finish();
  // Written beside and renamed, so a crash mid-write never leaves a plausible partial file.
  std::string temporary = path + ".tmp";
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return errnoError(temporary);
  size_t done = 0;
  while (done < file.size()) {
    ssize_t n = ::write(fd.get(), file.data() + done, file.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError(temporary);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return errnoError(temporary);
  if (::rename(temporary.c_str(), path.c_str()) != 0) return errnoError(path);
  return {};
}

Result<StateReader> StateReader::parse(std::vector<uint8_t> bytes) {
  auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  return index({owner->data(), owner->size()}, owner);
}

Result<StateReader> StateReader::index(std::span<const uint8_t> file, std::shared_ptr<const void> owner) {
  if (file.size() < kHeaderSize || std::memcmp(file.data(), kMagic, sizeof kMagic) != 0)
    return Error{"not a strata state file"};
  uint32_t version = loadAt<uint32_t>(file, 8);
  if (version != kStateFormatVersion)
    return Error{"state file format version " + std::to_string(version) + " is not supported (expected " +
                 std::to_string(kStateFormatVersion) + ")"};
  uint32_t crc = loadAt<uint32_t>(file, 12);
  uint64_t payloadLength = loadAt<uint64_t>(file, 16);
  if (payloadLength != file.size() - kHeaderSize)
    return Error{"state file is truncated or has trailing bytes (payload " + std::to_string(file.size() - kHeaderSize) +
                 " bytes, header says " + std::to_string(payloadLength) + ")"};
  if (crc32Update(0, file.data() + kHeaderSize, payloadLength) != crc) return Error{"state file checksum mismatch (damaged)"};

  StateReader reader;
  size_t at = kHeaderSize;
  while (at < file.size()) {
    if (file.size() - at < 2) return Error{"state file: truncated section header"};
    uint16_t nameLength = loadAt<uint16_t>(file, at);
    at += 2;
    if (nameLength > kMaxNameLength || file.size() - at < nameLength + 12u)
      return Error{"state file: malformed section header"};
    std::string name(reinterpret_cast<const char*>(file.data() + at), nameLength);
    at += nameLength;
    uint32_t sectionVersion = loadAt<uint32_t>(file, at);
    uint64_t length = loadAt<uint64_t>(file, at + 4);
    at += 12;
    if (length > file.size() - at) return Error{"state file: section '" + name + "' runs past the end"};
    if (!reader.sections_.emplace(name, Section{sectionVersion, at, at + length}).second)
      return Error{"state file: duplicate section '" + name + "'"};
    at += length;
  }
  reader.file_ = file;
  reader.owner_ = std::move(owner);
  return reader;
}

// Mapped, not read: the pages come straight from the page cache, populated in one call, where a
// read() into a fresh buffer faulted in and zeroed ~55 anonymous pages per 220 KiB file (each
// `strata run --restore` reads its state file twice: its configuration, then its board).
Result<StateReader> StateReader::readFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errnoError(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
  auto size = static_cast<size_t>(st.st_size);
  if (size < kHeaderSize) return Error{path + ": not a strata state file"};
  void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
  if (mapped == MAP_FAILED) return errnoError(path);
  std::shared_ptr<const void> owner(mapped, [size](const void* at) { ::munmap(const_cast<void*>(at), size); });
  auto reader = index({static_cast<const uint8_t*>(mapped), size}, std::move(owner));
  if (!reader) return Error{path + ": " + reader.error().message};
  return reader;
}

Result<uint32_t> StateReader::enterSection(std::string_view name, uint32_t maxVersion) {
  auto it = sections_.find(std::string(name));
  if (it == sections_.end()) return Error{"state file has no section '" + std::string(name) + "'"};
  if (it->second.version > maxVersion)
    return Error{"section '" + it->first + "' has version " + std::to_string(it->second.version) +
                 ", this strata reads up to " + std::to_string(maxVersion)};
  current_ = it->first;
  cursor_ = it->second.begin;
  end_ = it->second.end;
  error_.clear();
  return it->second.version;
}

Result<void> StateReader::leaveSection() {
  if (ok() && cursor_ != end_) fail(std::to_string(end_ - cursor_) + " unread bytes");
  auto result = status();
  current_.clear();
  cursor_ = end_ = 0;
  return result;
}

void StateReader::getRaw(void* out, size_t size) {
  if (!ok()) return;
  if (end_ - cursor_ < size) {
    fail("read past the end of the section");
    return;
  }
  std::memcpy(out, file_.data() + cursor_, size);
  cursor_ += size;
}

std::vector<uint8_t> StateReader::getBytes(size_t maxLength) {
  uint64_t length = get<uint64_t>();
  if (!ok()) return {};
  if (length > maxLength || length > end_ - cursor_) {
    fail("byte array of " + std::to_string(length) + " bytes is too long");
    return {};
  }
  std::vector<uint8_t> bytes(file_.begin() + static_cast<ptrdiff_t>(cursor_),
                             file_.begin() + static_cast<ptrdiff_t>(cursor_ + length));
  cursor_ += length;
  return bytes;
}

std::string StateReader::getString(size_t maxLength) {
  std::vector<uint8_t> bytes = getBytes(maxLength);
  return std::string(bytes.begin(), bytes.end());
}

void StateReader::getBytesInto(std::span<uint8_t> out) {
  uint64_t length = get<uint64_t>();
  if (!ok()) return;
  if (length != out.size()) {
    fail("expected " + std::to_string(out.size()) + " bytes, found " + std::to_string(length));
    return;
  }
  getRaw(out.data(), out.size());
}

void StateReader::fail(std::string message) {
  if (ok()) error_ = std::move(message);
}

Result<void> StateReader::status() const {
  if (ok()) return {};
  return Error{"state section '" + current_ + "': " + error_};
}

}  // namespace strata
