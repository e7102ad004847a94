// fuzz_make_seeds OUTDIR: writes the hand-made seed inputs of the board, boot,
// device tree, volume metadata, image check and OpenFlow targets (well-formed requests,
// files and records in each target's input encoding, see the *_target.cpp
// files) into OUTDIR/<corpus>/, from which the committed corpus was merged.
#include <elf.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "machine/virt_layout.h"
#include "network/openflow_wire.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/sync_io.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/thin_metadata.h"
#include "virtio/blk.h"
#include "virtio/mmio_transport.h"
#include "virtio/virtio_spec.h"

namespace {

using namespace strata;
using Bytes = std::vector<uint8_t>;

class Writer {
 public:
  Writer& u8(uint64_t v) { return put(v, 1); }
  Writer& u16(uint64_t v) { return put(v, 2); }
  Writer& u32(uint64_t v) { return put(v, 4); }
  Writer& u64(uint64_t v) { return put(v, 8); }
  Writer& raw(const Bytes& b) {
    bytes.insert(bytes.end(), b.begin(), b.end());
    return *this;
  }
  Writer& text(const std::string& s) { return raw(Bytes(s.begin(), s.end())); }
  Bytes bytes;

 private:
  Writer& put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
};

std::filesystem::path outDir;

void save(const std::string& corpus, const std::string& name, const Bytes& bytes) {
  auto dir = outDir / corpus;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// --- virtio programs (virtio_devices_target.cpp)

enum Op : uint8_t { kRamWrite, kRegWrite, kRegRead, kSetup, kDescriptor, kPost, kNotify, kRunLoop, kBackend, kReset };

struct Program : Writer {
  Program& setup(unsigned slot, uint64_t mask = ~uint64_t{0}, uint8_t sizeLog2 = 3) {
    u8(kSetup).u8(slot).u64(mask).u8(0).u8(sizeLog2).u8(sizeLog2);
    return *this;
  }
  Program& ram(uint32_t offset, const Bytes& b) {
    u8(kRamWrite).u32(offset).u8(b.size()).raw(b);
    return *this;
  }
  Program& desc(unsigned slot, unsigned q, uint16_t index, uint32_t offset, uint32_t len, uint8_t flags, uint16_t next) {
    u8(kDescriptor).u8(slot).u8(q).u16(index).u32(offset).u32(len).u8(flags).u16(next);
    return *this;
  }
  Program& post(unsigned slot, unsigned q, uint16_t head) {
    u8(kPost).u8(slot).u8(q).u16(head).u16(0).u16(0);
    return *this;
  }
  Program& notify(unsigned slot, unsigned q) {
    u8(kNotify).u8(slot).u8(q);
    return *this;
  }
  Program& runLoop(uint8_t turns = 7) {
    u8(kRunLoop).u8(turns);
    return *this;
  }
};

Bytes blkHeader(uint32_t type, uint64_t sector) {
  return Writer().u32(type).u32(0).u64(sector).bytes;
}

// Header, optional data, status: the usual three-descriptor request.
Program blkRequest(uint32_t type, uint64_t sector, uint32_t dataLen, bool deviceWrites, const Bytes& payload = {},
                   uint64_t featureMask = ~uint64_t{0}) {
  using namespace strata::virtio;
  Program p;
  p.setup(0, featureMask).ram(0x10000, blkHeader(type, sector));
  if (!payload.empty()) p.ram(0x11000, payload);
  uint16_t index = 0;
  p.desc(0, 0, index, 0x10000, 16, kDescFlagNext, index + 1);
  ++index;
  if (dataLen) {
    p.desc(0, 0, index, 0x11000, dataLen, kDescFlagNext | (deviceWrites ? kDescFlagWrite : 0), index + 1);
    ++index;
  }
  p.desc(0, 0, index, 0x12000, 1, kDescFlagWrite, 0);
  p.post(0, 0, 0).notify(0, 0).runLoop();
  return p;
}

void virtioSeeds() {
  using namespace strata::virtio;
  save("virtio", "blk-read", blkRequest(blk::kTypeIn, 1, 512, true).bytes);
  save("virtio", "blk-write", blkRequest(blk::kTypeOut, 2, 16, false, Bytes(16, 0x5a)).bytes);
  save("virtio", "blk-flush", blkRequest(blk::kTypeFlush, 0, 0, false).bytes);
  save("virtio", "blk-get-id", blkRequest(blk::kTypeGetId, 0, blk::kIdBytes, true).bytes);
  Bytes segment = Writer().u64(8).u32(8).u32(0).bytes;
  save("virtio", "blk-discard", blkRequest(blk::kTypeDiscard, 0, 16, false, segment).bytes);
  save("virtio", "blk-write-zeroes", blkRequest(blk::kTypeWriteZeroes, 0, 16, false, segment).bytes);

  // The same read through an indirect table, then completions held and released out of order.
  Program indirect;
  indirect.setup(0).ram(0x10000, blkHeader(blk::kTypeIn, 3));
  Writer table;
  table.u64(machine::virt::kRamBase + 0x10000).u32(16).u16(kDescFlagNext).u16(1);
  table.u64(machine::virt::kRamBase + 0x11000).u32(512).u16(kDescFlagNext | kDescFlagWrite).u16(2);
  table.u64(machine::virt::kRamBase + 0x12000).u32(1).u16(kDescFlagWrite).u16(0);
  indirect.ram(0x13000, table.bytes).desc(0, 0, 0, 0x13000, 48, kDescFlagIndirect, 0);
  indirect.u8(kBackend).u8(2);  // hold completions
  indirect.post(0, 0, 0).notify(0, 0).runLoop(2);
  indirect.u8(kReset).u8(0);
  indirect.u8(kBackend).u8(3);
  indirect.runLoop();
  save("virtio", "blk-indirect-held-reset", indirect.bytes);

  // Without EVENT_IDX and INDIRECT_DESC: only VERSION_1 and the device's own bits.
  Program plain = blkRequest(blk::kTypeIn, 0, 512, true, {}, featureBit(kFeatureVersion1));
  save("virtio", "blk-read-plain-features", plain.bytes);

  Bytes frame = Writer().raw(Bytes(12, 0)).raw(Bytes(6, 0xff)).raw({0x52, 0x54, 0, 0x12, 0x34, 0x56}).u16(0x0008).raw(Bytes(46, 0x11)).bytes;
  Program net;
  net.setup(1).desc(1, 0, 0, 0x20000, 2048, kDescFlagWrite, 0).post(1, 0, 0).notify(1, 0);
  net.ram(0x21000, frame).desc(1, 1, 0, 0x21000, static_cast<uint32_t>(frame.size()), 0, 0).post(1, 1, 0).notify(1, 1);
  net.runLoop().u8(kBackend).u8(1).u16(60).raw(Bytes(60, 0x22));
  net.runLoop();
  save("virtio", "net-tx-rx-loopback", net.bytes);

  Program console;
  console.setup(2).desc(2, 0, 0, 0x30000, 64, kDescFlagWrite, 0).post(2, 0, 0).notify(2, 0);
  console.u8(kBackend).u8(0).u8(5).text("hello");
  console.ram(0x31000, {'h', 'i', '\n'}).desc(2, 1, 0, 0x31000, 3, 0, 0).post(2, 1, 0).notify(2, 1).runLoop();
  save("virtio", "console-rx-tx", console.bytes);

  Program rng;
  rng.setup(3).desc(3, 0, 0, 0x38000, 64, kDescFlagWrite, 0).post(3, 0, 0).notify(3, 0).runLoop();
  rng.u8(kRegRead).u8(3).u16(mmio::kInterruptStatus).u8(2);
  rng.u8(kRegWrite).u8(3).u16(mmio::kInterruptAck).u32(1);
  save("virtio", "rng-request", rng.bytes);

  Program config;
  for (unsigned slot = 0; slot < 4; ++slot)
    for (uint16_t offset = 0x100; offset < 0x140; offset += 4) config.u8(kRegRead).u8(slot).u16(offset).u8(2);
  save("virtio", "config-space-reads", config.bytes);
}

// --- board MMIO (board_mmio_target.cpp): [write:1][size:2][what:4]

struct Mmio : Writer {
  Mmio& read(unsigned what, unsigned sizeLog2, uint32_t offset) {
    u8((sizeLog2 << 4) | what).u32(offset);
    return *this;
  }
  Mmio& write(unsigned what, unsigned sizeLog2, uint32_t offset, uint64_t value) {
    u8(0x40 | (sizeLog2 << 4) | what).u32(offset).u64(value);
    return *this;
  }
};

void mmioSeeds() {
  Mmio plic;
  plic.write(0, 2, 4 * 10, 1).write(0, 2, 0x2080, 1u << 10).write(0, 2, 0x201000, 0);
  plic.u8(12).u8(1).u8('x');  // UART input
  plic.write(2, 0, 1, 1).read(0, 2, 0x1000).read(0, 2, 0x201004).write(0, 2, 0x201004, 10).read(0, 2, 0x201004);
  save("mmio", "plic-claim-uart-irq", plic.bytes);

  Mmio clint;
  clint.write(1, 3, 0x4000, 100).write(1, 2, 0x4008 + 4, 0).read(1, 3, 0xbff8).u8(10).u16(200);
  clint.read(1, 2, 0xbffc).write(1, 2, 0, 1).read(1, 2, 0).write(1, 2, 4, 1).write(1, 0, 0, 0);
  save("mmio", "clint-timer-ipi", clint.bytes);

  Mmio uart;
  uart.write(2, 0, 3, 0x80).write(2, 0, 0, 1).write(2, 0, 1, 0).write(2, 0, 3, 3).write(2, 0, 2, 7);
  uart.write(2, 0, 4, 0x10).write(2, 0, 0, 'A').read(2, 0, 5).read(2, 0, 0).write(2, 0, 1, 3).read(2, 0, 2);
  uart.u8(12).u8(3).text("abc");
  for (int i = 0; i < 18; ++i) uart.read(2, 0, 5);
  uart.read(2, 0, 0).read(2, 0, 6).write(2, 0, 7, 9).read(2, 0, 7);
  save("mmio", "uart-registers", uart.bytes);

  Mmio rtc;
  rtc.read(3, 2, 0).read(3, 2, 4).write(3, 2, 0x0c, 0).write(3, 2, 0x08, 5000).write(3, 2, 0x10, 1);
  rtc.u8(10).u16(100).u8(13);
  rtc.read(3, 2, 0x18).write(3, 2, 0x1c, 1).write(3, 2, 0x14, 1).write(3, 2, 0, 12345);
  save("mmio", "rtc-alarm", rtc.bytes);

  Mmio misc;
  misc.read(4, 0, 0).write(4, 0, 0, 1).write(4, 0, 0, 2).write(5, 2, 0, 0x5555).write(5, 2, 0, 0x7777);
  misc.write(5, 2, 0, (5u << 16) | 0x3333);
  for (unsigned slot = 6; slot < 10; ++slot) misc.read(slot, 2, 0).read(slot, 2, 8).write(slot, 2, 0x70, 1).read(slot, 2, 0x10);
  misc.u8(11);
  save("mmio", "pvpanic-test-virtio", misc.bytes);
}

// --- SBI calls (sbi_target.cpp): harts, then per call hart, pick, a6, a0-a5

struct Calls : Writer {
  Calls& call(unsigned hart, uint8_t pick, uint8_t function, std::initializer_list<uint64_t> args) {
    u8(hart).u8(pick).u8(function);
    unsigned n = 0;
    for (uint64_t a : args) u64(a), ++n;
    for (; n < 6; ++n) u64(0);
    return *this;
  }
};

void sbiSeeds() {
  const uint64_t ram = machine::virt::kRamBase;
  enum : uint8_t { kSetTimer, kPutchar, kGetchar, kClearIpi, kSendIpi, kFenceI, kSfence, kSfenceAsid, kShutdown,
                   kBase, kTime, kIpi, kRfence, kHsm, kSrst, kDbcn };
  Calls base;
  base.u8(3);
  for (uint8_t f = 0; f < 7; ++f) base.call(0, kBase, f, {0x54494D45});
  base.call(0, kBase, 3, {0x12345});
  save("sbi", "base", base.bytes);

  Calls harts;
  harts.u8(3);
  harts.call(0, kHsm, 2, {1}).call(0, kHsm, 0, {1, ram + 0x1000, 42}).call(0, kHsm, 2, {1});
  harts.call(0, kHsm, 0, {1, ram, 0}).call(0, kHsm, 0, {3, 0x1000, 0}).call(1, kHsm, 1, {}).call(0, kHsm, 3, {});
  harts.call(0, kIpi, 0, {0b110, 0}).call(0, kIpi, 0, {1, 3}).call(0, kIpi, 0, {0, ~uint64_t{0}});
  harts.call(2, kRfence, 0, {0b1111, 0}).call(0, kRfence, 1, {1, 1, 0, 4096}).call(0, kRfence, 2, {0, ~uint64_t{0}, 0, 4096, 1});
  harts.call(0, kTime, 0, {1000}).call(0, kSrst, 0, {0, 0}).call(0, kSrst, 0, {1, 1}).call(0, kSrst, 0, {0xF0000000, 0});
  save("sbi", "hsm-ipi-fence-reset", harts.bytes);

  Calls console;
  console.u8(1);
  console.call(0, kDbcn, 2, {'a'}).call(0, kDbcn, 0, {3, ram + 16, 0}).call(0, kDbcn, 1, {8, ram + 64, 0});
  console.call(0, kDbcn, 0, {0, 0, 0}).call(0, kDbcn, 0, {1 << 20, ram, 0});
  save("sbi", "debug-console", console.bytes);

  Calls legacy;
  legacy.u8(2);
  legacy.call(0, kSetTimer, 0, {500}).call(0, kPutchar, 0, {'z'}).call(0, kGetchar, 0, {}).call(0, kClearIpi, 0, {});
  legacy.call(0, kSendIpi, 0, {ram}).call(1, kFenceI, 0, {0}).call(0, kSfence, 0, {ram + 8, 0, 4096});
  legacy.call(0, kSfenceAsid, 0, {ram, 0, 4096, 1}).call(0, kShutdown, 0, {}).call(0, 0xff, 0, {}).u64(0x0A000000);
  save("sbi", "legacy", legacy.bytes);
}

// --- boot files (boot_loader_target.cpp): mode, RAM size step, initrd size, file

Bytes linuxImage(uint64_t textOffset, uint64_t imageSize, size_t fileSize) {
  Writer w;
  w.u32(0x6f).u32(0).u64(textOffset).u64(imageSize).u64(0).u32(2).u32(0).u64(0);
  w.text(std::string("RISCV\0\0\0", 8)).text("RSC\x05").u32(0);
  w.bytes.resize(std::max<size_t>(fileSize, w.bytes.size()), 0x13);
  return w.bytes;
}

// An RV64 ELF with one PT_LOAD segment, and a symbol table naming tohost if asked.
Bytes elfFile(uint64_t vaddr, uint64_t paddr, uint64_t fileBytes, uint64_t memBytes, bool symbols) {
  Elf64_Ehdr header{};
  std::memcpy(header.e_ident, ELFMAG, SELFMAG);
  header.e_ident[EI_CLASS] = ELFCLASS64;
  header.e_ident[EI_DATA] = ELFDATA2LSB;
  header.e_ident[EI_VERSION] = EV_CURRENT;
  header.e_type = ET_EXEC;
  header.e_machine = EM_RISCV;
  header.e_version = EV_CURRENT;
  header.e_entry = vaddr;
  header.e_phoff = sizeof header;
  header.e_ehsize = sizeof header;
  header.e_phentsize = sizeof(Elf64_Phdr);
  header.e_phnum = 1;
  header.e_shentsize = sizeof(Elf64_Shdr);
  Elf64_Phdr segment{};
  segment.p_type = PT_LOAD;
  segment.p_offset = 0x100;
  segment.p_vaddr = vaddr;
  segment.p_paddr = paddr;
  segment.p_filesz = fileBytes;
  segment.p_memsz = memBytes;
  segment.p_flags = PF_R | PF_X;
  Bytes bytes(0x100 + fileBytes, 0x13);
  const char names[] = "\0tohost\0fromhost";
  if (symbols) {
    uint64_t symtab = bytes.size(), strtab = symtab + 3 * sizeof(Elf64_Sym), sections = strtab + sizeof names;
    header.e_shoff = sections;
    header.e_shnum = 3;
    Elf64_Sym syms[3]{};
    syms[1].st_name = 1;
    syms[1].st_value = paddr + 0x40;
    syms[2].st_name = 8;
    syms[2].st_value = paddr + 0x48;
    Elf64_Shdr shdrs[3]{};
    shdrs[1].sh_type = SHT_SYMTAB;
    shdrs[1].sh_offset = symtab;
    shdrs[1].sh_size = sizeof syms;
    shdrs[1].sh_link = 2;
    shdrs[1].sh_entsize = sizeof(Elf64_Sym);
    shdrs[2].sh_type = SHT_STRTAB;
    shdrs[2].sh_offset = strtab;
    shdrs[2].sh_size = sizeof names;
    bytes.resize(sections + sizeof shdrs);
    std::memcpy(&bytes[symtab], syms, sizeof syms);
    std::memcpy(&bytes[strtab], names, sizeof names);
    std::memcpy(&bytes[sections], shdrs, sizeof shdrs);
  }
  std::memcpy(bytes.data(), &header, sizeof header);
  std::memcpy(&bytes[sizeof header], &segment, sizeof segment);
  return bytes;
}

void bootSeeds() {
  const uint64_t ram = machine::virt::kRamBase;
  auto seed = [](uint8_t mode, uint8_t ramStep, uint16_t initrdUnits, const Bytes& file) {
    return Writer().u8(mode).u8(ramStep).u16(initrdUnits).raw(file).bytes;
  };
  save("boot", "image-with-initrd", seed(0, 3, 64, linuxImage(0x200000, 0x10000, 256)));
  save("boot", "image-too-big", seed(0, 0, 0, linuxImage(0x200000, 64 << 20, 128)));
  save("boot", "elf-kernel-linked-in-ram", seed(0, 3, 16, elfFile(0xffffffff80000000, ram + 0x200000, 64, 4096, false)));
  save("boot", "elf-kernel-moved", seed(0, 3, 16, elfFile(0xffffffff80000000, 0x200000, 64, 8192, false)));
  save("boot", "firmware-flat", seed(1, 0, 0, Bytes(300, 0x73)));
  save("boot", "firmware-elf", seed(1, 1, 0, elfFile(ram, ram, 128, 128, false)));
  save("boot", "bare-elf-tohost", seed(2, 0, 0, elfFile(ram, ram, 256, 4096, true)));
}

// --- device tree specs (device_tree_target.cpp)

void deviceTreeSeeds() {
  const uint64_t ram = machine::virt::kRamBase;
  auto spec = [&](uint16_t harts, uint64_t ramBytes, bool initrd, Bytes slots, Bytes seed, const std::string& args) {
    Writer w;
    w.u16(harts).u64(ramBytes).u8(initrd ? 1 : 0).u64(ram + (16 << 20)).u64(ram + (17 << 20));
    w.u8(slots.size()).raw(slots).u8(seed.size()).raw(seed).text(args);
    return w.bytes;
  };
  save("device_tree", "one-hart", spec(1, 64 << 20, false, {}, {}, "console=ttyS0"));
  save("device_tree", "four-harts-initrd-slots", spec(4, 256 << 20, true, {0, 1, 2, 3}, Bytes(16, 7), "root=/dev/vda rw"));
  save("device_tree", "eight-harts-all-slots", spec(8, 1ull << 32, true, {0, 1, 2, 3, 4, 5, 6, 7}, Bytes(64, 1), ""));
}

// --- volume metadata (volume_metadata_target.cpp): kind, flags, parameters, bytes

void volumeSeeds() {
  using namespace strata::storage::volume;
  auto seed = [](uint8_t kind, Writer params, const Bytes& bytes) {
    return Writer().u8(kind).u8(0).raw(params.bytes).raw(bytes).bytes;
  };
  PvLabel label{randomUuid(), randomUuid(), 1, 64ull << 30, kDefaultExtentSize};
  save("volume_meta", "label", seed(0, Writer(), encodeLabel(label)));
  IntentHeader intent{randomUuid(), 64 << 20, 16};
  save("volume_meta", "intent-header", seed(1, Writer().u64(1ull << 30), encodeIntentHeader(intent)));

  PoolRecord pool;
  pool.uuid = randomUuid();
  pool.name = "tank";
  pool.sequence = 7;
  pool.nextVolumeId = 7;
  for (int i = 0; i < 3; ++i) pool.pvs.push_back({randomUuid(), 1ull << 30, 200, PvState::Active, "/dev/pv" + std::to_string(i)});
  pool.pvs[2].state = PvState::Failed;
  auto volume = [&](uint32_t id, const std::string& name, VolumeType type, std::vector<Leg> legs, uint64_t legExtents) {
    VolumeRecord v;
    v.id = id;
    v.name = name;
    v.type = type;
    v.legs = std::move(legs);
    v.legExtents = legExtents;
    v.mirrors = type == VolumeType::Mirror ? static_cast<uint32_t>(v.legs.size()) : 1;
    v.stripeSize = type == VolumeType::Striped || type == VolumeType::Raid5 ? 65536 : 0;
    v.sizeBytes = volumeCapacity(v, pool.extentSize);
    return v;
  };
  pool.volumes.push_back(volume(1, "linear", VolumeType::Linear, {Leg{{{0, 0, 4}, {1, 0, 2}}}}, 6));
  pool.volumes.push_back(volume(2, "mirror", VolumeType::Mirror, {Leg{{{0, 10, 4}}}, Leg{{{1, 10, 4}}}}, 4));
  pool.volumes.push_back(
      volume(3, "raid5", VolumeType::Raid5, {Leg{{{0, 20, 2}}}, Leg{{{1, 20, 2}}}, Leg{{{2, 20, 2}}}}, 2));
  VolumeRecord data = volume(4, "pool_tdata", VolumeType::Linear, {Leg{{{0, 30, 8}}}}, 8);
  VolumeRecord meta = volume(5, "pool_tmeta", VolumeType::Linear, {Leg{{{1, 30, 1}}}}, 1);
  data.flags = meta.flags = kVolumeHidden;
  VolumeRecord thinPool;
  thinPool.id = 6;
  thinPool.name = "pool";
  thinPool.type = VolumeType::ThinPool;
  thinPool.dataVolume = 4;
  thinPool.metaVolume = 5;
  thinPool.chunkSize = 65536;
  thinPool.sizeBytes = data.sizeBytes;
  pool.volumes.push_back(data);
  pool.volumes.push_back(meta);
  pool.volumes.push_back(thinPool);
  VolumeRecord thin;
  thin.id = 7;
  thin.name = "thin";
  thin.type = VolumeType::Thin;
  thin.thinPool = 6;
  thin.sizeBytes = 1 << 30;
  pool.nextVolumeId = 8;
  pool.volumes.push_back(thin);
  auto slot = encodeMetadataSlot(pool);
  if (!slot) {
    std::fprintf(stderr, "pool seed: %s\n", slot.error().message.c_str());
    std::exit(1);
  }
  save("volume_meta", "metadata-slot", seed(2, Writer(), *slot));

  ThinSuperblock super{3, 9, 65536, 1, 4096, 0x1234};
  save("volume_meta", "thin-superblock", seed(3, Writer(), encodeThinSuperblock(super)));
  ThinDevices devices;
  for (uint64_t v = 0; v < 10; ++v) devices[1].set(v, static_cast<uint32_t>(v + 5));
  devices[2].set(100, 3);
  devices[2].set(5, 40);
  save("volume_meta", "thin-checkpoint", seed(4, Writer().u64(9).u16(127), encodeThinCheckpoint(9, devices)));
  std::vector<ThinOp> ops = {{ThinOp::Map, 1, 4, 7},  {ThinOp::Snapshot, 3, 1, kNoChunk}, {ThinOp::Unmap, 1, 4, kNoChunk},
                             {ThinOp::Truncate, 3, 2, kNoChunk}, {ThinOp::Delete, 1, 0, kNoChunk}};
  save("volume_meta", "thin-journal",
       seed(5, Writer().u64(9).u64(4).u16(63).u64(64 << 20), encodeThinJournalRecord(9, 4, ops)));
}

// --- qcow2 images for image check: small clusters so whole images stay small

void imageSeeds() {
  auto loop = EventLoop::create();
  auto scratch = std::filesystem::temp_directory_path() / "strata-fuzz-seed.qcow2";
  for (auto [clusterBits, refcountBits, writes] : {std::tuple{9, 16, 3}, std::tuple{10, 1, 5}, std::tuple{12, 64, 2}}) {
    std::filesystem::remove(scratch);
    storage::CreateOptions options;
    options.format = storage::ImageFormat::Qcow2;
    options.size = 1 << 20;
    options.clusterSize = 1u << clusterBits;
    options.refcountBits = refcountBits;
    if (!storage::createImage(scratch, options)) std::exit(1);
    {
      storage::DiskOptions open;
      auto image = storage::openDiskImage(scratch, open, **loop);
      if (!image) std::exit(1);
      Bytes data(4096, 0x42);
      for (int i = 0; i < writes; ++i)
        (void)storage::writeSync(**image, **loop, uint64_t(i) * 200000, data.data(), data.size());
      (void)storage::flushSync(**image, **loop);
    }
    std::ifstream in(scratch, std::ios::binary);
    Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    save("image_check", "qcow2-cluster" + std::to_string(1 << clusterBits) + "-refcount" + std::to_string(refcountBits),
         bytes);
  }
  std::filesystem::remove(scratch);
}

}  // namespace

// --- OpenFlow controller streams (openflow_target.cpp): big-endian messages after a HELLO

Bytes ofMessage(uint8_t type, const std::function<void(network::openflow::Writer&)>& body, uint8_t version = 4) {
  Bytes out;
  network::openflow::Writer w(out);
  w.u8(version);
  w.u8(type);
  w.u16(0);
  w.u32(1);
  if (body) body(w);
  w.patch16(2, static_cast<uint16_t>(out.size()));
  return out;
}

void openFlowSeeds() {
  using namespace network::openflow;
  using OfWriter = network::openflow::Writer;
  auto hello = ofMessage(kHello, {});
  auto flowMod = [](uint8_t command, const Bytes& oxms, const Bytes& actions) {
    return ofMessage(kFlowMod, [&](OfWriter& w) {
      w.u64(0x10);
      w.u64(0);
      w.u8(0);
      w.u8(command);
      w.u32(0);  // idle, hard timeouts
      w.u16(100);
      w.u32(kNoBuffer);
      w.u32(kPortAny);
      w.u32(0xffffffff);
      w.u32(0);  // flags, pad
      w.u16(1);
      w.u16(static_cast<uint16_t>(4 + oxms.size()));
      w.bytes(oxms.data(), oxms.size());
      w.zeros((8 - (4 + oxms.size()) % 8) % 8);
      if (actions.empty()) return;
      w.u16(kInstApplyActions);
      w.u16(static_cast<uint16_t>(8 + actions.size()));
      w.zeros(4);
      w.bytes(actions.data(), actions.size());
    });
  };
  Bytes ipToB = {0x80, 0, kOxmEthType << 1, 2, 0x08, 0x00, 0x80, 0, kOxmIpv4Dst << 1, 4, 10, 0, 0, 2};
  Bytes vlan20 = {0x80, 0, kOxmVlanVid << 1, 2, 0x10, 20};
  Bytes outputs = {0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,                    // output:2
                   0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0, 0, 0, 0, 0, 0};  // CONTROLLER
  Bytes vlanActions = {0, kActPushVlan, 0, 8, 0x81, 0x00, 0, 0, 0, kActSetField, 0, 16, 0x80, 0, kOxmVlanVid << 1, 2,
                       0x10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0};
  auto multipart = [](uint16_t type, const Bytes& body) {
    return ofMessage(kMultipartRequest, [&](OfWriter& w) {
      w.u16(type);
      w.u16(0);
      w.zeros(4);
      w.bytes(body.data(), body.size());
    });
  };
  Bytes flowStatsBody = {0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  flowStatsBody.resize(32, 0);
  flowStatsBody.insert(flowStatsBody.end(), {0, 1, 0, 4, 0, 0, 0, 0});
  Bytes packetOut = ofMessage(kPacketOut, [](OfWriter& w) {
    w.u32(kNoBuffer);
    w.u32(kPortController);
    w.u16(16);
    w.zeros(6);
    w.u16(kActOutput);
    w.u16(16);
    w.u32(kPortFlood);
    w.zeros(8);
    Bytes frame = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 9, 0x08, 0x06};
    frame.resize(60, 0);
    w.bytes(frame.data(), frame.size());
  });
  auto join = [](std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
    return out;
  };
  save("openflow", "flows-and-stats",
       join({hello, flowMod(kAdd, ipToB, outputs), flowMod(kAdd, vlan20, vlanActions), multipart(kMpFlow, flowStatsBody),
             multipart(kMpAggregate, flowStatsBody), multipart(kMpPortStats, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}),
             flowMod(kModify, {}, outputs), flowMod(kDeleteStrict, ipToB, {})}));
  save("openflow", "table-miss-and-packet-out",
       join({hello, flowMod(kAdd, {}, outputs), packetOut, multipart(kMpPortDesc, {}), multipart(kMpTableFeatures, {}),
             multipart(kMpDesc, {}), multipart(kMpTable, {}), ofMessage(kEchoRequest, {}),
             ofMessage(kFeaturesRequest, {}), ofMessage(kGetConfigRequest, {}), ofMessage(kBarrierRequest, {})}));
  save("openflow", "hello-1.0", ofMessage(kHello, {}, 1));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  outDir = argv[1];
  virtioSeeds();
  mmioSeeds();
  sbiSeeds();
  bootSeeds();
  deviceTreeSeeds();
  volumeSeeds();
  imageSeeds();
  openFlowSeeds();
  return 0;
}
