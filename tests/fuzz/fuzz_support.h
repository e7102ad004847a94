// Helpers shared by the fuzz targets: FuzzInput reads little-endian values off
// the input (zeros once it runs out, so every input decodes to something), and
// InputFile rewrites one scratch file per process for targets that parse files.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/log.h"

namespace strata::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return position_ >= size_; }
  size_t remaining() const { return size_ - position_; }
  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  // Up to `count` bytes (fewer at the end of the input).
  std::vector<uint8_t> bytes(size_t count) {
    count = std::min(count, remaining());
    std::vector<uint8_t> out(data_ + position_, data_ + position_ + count);
    position_ += count;
    return out;
  }
  std::vector<uint8_t> rest() { return bytes(remaining()); }

 private:
  uint64_t take(unsigned width) {
    uint64_t value = 0;
    for (unsigned i = 0; i < width && position_ < size_; ++i) value |= uint64_t{data_[position_++]} << (8 * i);
    return value;
  }
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

// Quiet logs (they cost more than the code under test), unless
// STRATA_FUZZ_DEBUG=1 asks to see why an input replayed by hand was refused.
inline void quietLogs() {
  log::setLevel(std::getenv("STRATA_FUZZ_DEBUG") ? log::Level::Debug : log::Level::Error);
}

// A scratch file named after the target and the process, on tmpfs when there
// is one, removed at exit.
class InputFile {
 public:
  explicit InputFile(const std::string& tag) {
    const char* directory = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path_ = std::string(directory) + "/strata-fuzz-" + tag + "-" + std::to_string(::getpid());
  }
  ~InputFile() { ::unlink(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  // Replaces the file's content with the bytes.
  bool write(const uint8_t* data, size_t size) const {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    size_t written = 0;
    while (written < size) {
      ssize_t n = ::write(fd, data + written, size - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    ::close(fd);
    return written == size;
  }
  bool write(const std::vector<uint8_t>& bytes) const { return write(bytes.data(), bytes.size()); }

 private:
  std::string path_;
};

}  // namespace strata::fuzz
