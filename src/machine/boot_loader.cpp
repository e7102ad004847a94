#include "machine/boot_loader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include <fmt/core.h>

#include "base/unique_fd.h"

namespace strata::machine {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kMaxBootFileBytes = 1024 * kMiB;
constexpr char kImageMagic2[4] = {'R', 'S', 'C', '\x05'};
constexpr uint64_t kImageHeaderBytes = 64;  // the RISC-V Linux Image header

template <typename T>
bool readStruct(const std::vector<uint8_t>& bytes, uint64_t offset, T& out) {
  if (offset > bytes.size() || sizeof(T) > bytes.size() - offset) return false;
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return true;
}

std::string sizeText(uint64_t bytes) {
  return bytes >= kMiB ? fmt::format("{} MiB", (bytes + kMiB - 1) / kMiB) : fmt::format("{} KiB", (bytes + 1023) / 1024);
}

Error tooSmall(const std::string& path, const char* what, uint64_t need, const GuestRam& ram) {
  return Error{fmt::format("{}: {} needs {} but guest memory is {}", path, what, sizeText(need), sizeText(ram.size()))};
}

bool isElf(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= SELFMAG && std::memcmp(bytes.data(), ELFMAG, SELFMAG) == 0;
}

Result<Elf64_Ehdr> checkRiscvElf(const std::string& path, const std::vector<uint8_t>& bytes) {
  Elf64_Ehdr header;
  if (!readStruct(bytes, 0, header)) return Error{path + ": truncated ELF header"};
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB)
    return Error{path + ": not a 64-bit little-endian ELF"};
  if (header.e_machine != EM_RISCV) return Error{fmt::format("{}: ELF for machine {}, not RISC-V", path, header.e_machine)};
  if (header.e_phentsize != sizeof(Elf64_Phdr)) return Error{path + ": malformed ELF program header size"};
  return header;
}

Result<std::vector<Elf64_Phdr>> loadSegments(const std::string& path, const std::vector<uint8_t>& bytes,
                                             const Elf64_Ehdr& header) {
  std::vector<Elf64_Phdr> segments;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!readStruct(bytes, header.e_phoff + uint64_t{i} * sizeof ph, ph)) return Error{path + ": truncated ELF program headers"};
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz || ph.p_offset > bytes.size() || ph.p_filesz > bytes.size() - ph.p_offset)
      return Error{fmt::format("{}: ELF segment {} lies outside the file", path, i)};
    segments.push_back(ph);
  }
  if (segments.empty()) return Error{path + ": ELF has no loadable segments"};
  return segments;
}

// Copies segments so that physical address `p_paddr` lands at `p_paddr + shift`.
Result<LoadedImage> placeSegments(const std::string& path, const std::vector<uint8_t>& bytes,
                                  const std::vector<Elf64_Phdr>& segments, uint64_t entry, uint64_t shift,
                                  GuestRam& ram) {
  // The entry point is a virtual address; find it through the segment holding it.
  LoadedImage image{entry + shift, UINT64_MAX, 0};
  for (const auto& ph : segments)
    if (entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz) image.entry = ph.p_paddr + (entry - ph.p_vaddr) + shift;
  for (const auto& ph : segments) {
    uint64_t at = ph.p_paddr + shift;
    uint8_t* host = ram.translate(at, ph.p_memsz);
    if (!host)
      return Error{fmt::format("{}: segment at {:#x} (+{:#x}) is outside guest memory {:#x}-{:#x}", path, at,
                               ph.p_memsz, ram.base(), ram.end())};
    std::memcpy(host, bytes.data() + ph.p_offset, ph.p_filesz);
    std::memset(host + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    image.start = std::min(image.start, at);
    image.end = std::max(image.end, at + ph.p_memsz);
  }
  return image;
}

Result<LoadedImage> placeElfAsLinked(const std::string& path, const std::vector<uint8_t>& bytes, GuestRam& ram) {
  auto header = checkRiscvElf(path, bytes);
  if (!header) return header.error();
  auto segments = loadSegments(path, bytes, *header);
  if (!segments) return segments.error();
  return placeSegments(path, bytes, *segments, header->e_entry, 0, ram);
}

// A boot file opened for reading: a regular file of at most the allowed size.
struct BootFile {
  UniqueFd fd;
  uint64_t size = 0;
};

Result<BootFile> openBootFile(const std::string& path, uint64_t maxBytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errnoError(path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
  if (static_cast<uint64_t>(st.st_size) > maxBytes) return Error{fmt::format("{}: larger than {}", path, sizeText(maxBytes))};
  return BootFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// Reads up to `length` bytes from the start of the file into `out`; fewer only at its end.
Result<uint64_t> readPrefix(const std::string& path, const BootFile& file, uint8_t* out, uint64_t length) {
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(file.fd.get(), out + done, length - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError(path);
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  return done;
}

Result<std::vector<uint8_t>> readAll(const std::string& path, const BootFile& file) {
  std::vector<uint8_t> bytes(static_cast<size_t>(file.size));
  auto done = readPrefix(path, file, bytes.data(), bytes.size());
  if (!done) return done.error();
  bytes.resize(static_cast<size_t>(*done));
  return bytes;
}

// The file is read straight into guest RAM (its pages allocated in one go):
// a kernel is megabytes, and a staging buffer doubled the copying and the page faults.
Result<LoadedImage> loadLinuxImage(const std::string& path, const BootFile& file, const std::vector<uint8_t>& header,
                                   GuestRam& ram) {
  uint64_t textOffset = 0, imageSize = 0;
  readStruct(header, 8, textOffset);
  readStruct(header, 16, imageSize);
  imageSize = std::max<uint64_t>(imageSize, file.size);
  if (textOffset % (2 * kMiB) != 0 || textOffset > ram.size())
    return Error{fmt::format("{}: Image text_offset {:#x} is not a 2 MiB multiple inside RAM", path, textOffset)};
  uint64_t load = ram.base() + textOffset;
  uint8_t* host = ram.translate(load, imageSize);
  if (!host) return tooSmall(path, "the kernel", textOffset + imageSize, ram);
  ram.populate(load, file.size);
  auto done = readPrefix(path, file, host, file.size);
  if (!done) return done.error();
  if (*done < file.size) return Error{path + ": the kernel Image shrank while it was read"};
  return LoadedImage{load, load, load + imageSize};
}

}  // namespace

Result<std::vector<uint8_t>> readWholeFile(const std::string& path, uint64_t maxBytes) {
  auto file = openBootFile(path, maxBytes);
  if (!file) return file.error();
  return readAll(path, *file);
}

Result<LoadedImage> loadKernel(const std::string& path, GuestRam& ram) {
  auto file = openBootFile(path, kMaxBootFileBytes);
  if (!file) return file.error();
  if (file->size == 0) return Error{path + ": empty file"};
  std::vector<uint8_t> imageHeader(kImageHeaderBytes);
  auto headerRead = readPrefix(path, *file, imageHeader.data(), imageHeader.size());
  if (!headerRead) return headerRead.error();
  imageHeader.resize(static_cast<size_t>(*headerRead));
  char magic2[4];
  if (readStruct(imageHeader, 56, magic2) && std::memcmp(magic2, kImageMagic2, 4) == 0)
    return loadLinuxImage(path, *file, imageHeader, ram);
  auto bytes = readAll(path, *file);
  if (!bytes) return bytes.error();
  if (!isElf(*bytes)) return Error{path + ": not a RISC-V Linux Image or ELF kernel"};

  auto header = checkRiscvElf(path, *bytes);
  if (!header) return header.error();
  auto segments = loadSegments(path, *bytes, *header);
  if (!segments) return segments.error();
  // vmlinux links at a virtual address with physical addresses near 0; like QEMU,
  // move it to the 2 MiB slot above the RAM base when it does not fit as linked.
  uint64_t lowest = UINT64_MAX, highest = 0;
  for (const auto& ph : *segments) {
    lowest = std::min(lowest, ph.p_paddr);
    highest = std::max(highest, ph.p_paddr + ph.p_memsz);
  }
  bool fitsAsLinked = ram.translate(lowest, highest - lowest) != nullptr;
  uint64_t shift = fitsAsLinked ? 0 : ram.base() + 2 * kMiB - lowest;
  if (!fitsAsLinked && !ram.translate(lowest + shift, highest - lowest))
    return tooSmall(path, "the kernel", 2 * kMiB + highest - lowest, ram);
  return placeSegments(path, *bytes, *segments, header->e_entry, shift, ram);
}

Result<LoadedImage> loadElfAtLinkAddress(const std::string& path, GuestRam& ram) {
  auto bytes = readWholeFile(path, kMaxBootFileBytes);
  if (!bytes) return bytes.error();
  if (!isElf(*bytes)) return Error{path + ": not an ELF file"};
  return placeElfAsLinked(path, *bytes, ram);
}

Result<LoadedImage> loadFirmware(const std::string& path, GuestRam& ram) {
  auto bytes = readWholeFile(path, kMaxBootFileBytes);
  if (!bytes) return bytes.error();
  if (bytes->empty()) return Error{path + ": empty firmware file"};
  if (isElf(*bytes)) return placeElfAsLinked(path, *bytes, ram);
  uint8_t* host = ram.translate(ram.base(), bytes->size());
  if (!host) return tooSmall(path, "the firmware", bytes->size(), ram);
  std::memcpy(host, bytes->data(), bytes->size());
  return LoadedImage{ram.base(), ram.base(), ram.base() + bytes->size()};
}

Result<std::optional<uint64_t>> findElfSymbol(const std::string& path, const std::string& name) {
  auto bytes = readWholeFile(path, kMaxBootFileBytes);
  if (!bytes) return bytes.error();
  if (!isElf(*bytes)) return Error{path + ": not an ELF file"};
  auto header = checkRiscvElf(path, *bytes);
  if (!header) return header.error();
  for (unsigned i = 0; i < header->e_shnum; ++i) {
    Elf64_Shdr section;
    if (!readStruct(*bytes, header->e_shoff + uint64_t{i} * sizeof section, section))
      return Error{path + ": truncated ELF section headers"};
    if (section.sh_type != SHT_SYMTAB) continue;
    Elf64_Shdr strings;
    if (!readStruct(*bytes, header->e_shoff + uint64_t{section.sh_link} * sizeof strings, strings))
      return Error{path + ": bad symbol string table"};
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= section.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym symbol;
      if (!readStruct(*bytes, section.sh_offset + off, symbol)) return Error{path + ": truncated symbol table"};
      uint64_t nameAt = strings.sh_offset + symbol.st_name;
      if (symbol.st_name >= strings.sh_size || nameAt >= bytes->size()) continue;
      const char* symbolName = reinterpret_cast<const char*>(bytes->data() + nameAt);
      size_t maxLength = std::min<uint64_t>(strings.sh_size - symbol.st_name, bytes->size() - nameAt);
      if (strnlen(symbolName, maxLength) == name.size() && name.compare(0, name.size(), symbolName, name.size()) == 0)
        return std::optional<uint64_t>(symbol.st_value);
    }
  }
  return std::optional<uint64_t>();
}

Result<std::pair<uint64_t, uint64_t>> loadInitrd(const std::string& path, GuestRam& ram, uint64_t floor,
                                                 uint64_t limit) {
  auto file = openBootFile(path, kMaxBootFileBytes);
  if (!file) return file.error();
  if (file->size == 0) return Error{path + ": empty initrd"};
  uint64_t size = file->size;
  const uint64_t pageSize = 4096;
  if (size > limit - floor || ((limit - size) & ~(pageSize - 1)) < floor) {
    uint64_t needed = (floor - ram.base()) + (size + pageSize - 1) / pageSize * pageSize + (ram.end() - limit);
    return tooSmall(path, "the kernel and initrd", needed, ram);
  }
  uint64_t start = (limit - size) & ~(pageSize - 1);
  ram.populate(start, size);
  auto done = readPrefix(path, *file, ram.translate(start, size), size);
  if (!done) return done.error();
  if (*done < size) return Error{path + ": the initrd shrank while it was read"};
  return std::make_pair(start, start + size);
}

uint64_t deviceTreeAddress(const GuestRam& ram, uint64_t blobSize) {
  uint64_t top = ram.end() - blobSize;
  uint64_t aligned = top & ~(2 * kMiB - 1);
  return aligned >= ram.base() ? aligned : (top & ~uint64_t{7});
}

}  // namespace strata::machine
