#include "vmm/gdb_registers.h"

#include <fmt/core.h>

#include "vmm/gdb_packet.h"

namespace strata::vmm {
namespace {

constexpr unsigned kPc = 32, kFirstFloat = 33, kFirstCsr = 65, kPriv = kFirstCsr + 4096;
constexpr uint16_t kFflags = 0x001, kFrm = 0x002, kFcsr = 0x003;  // 32 bits wide in gdb's FPU feature

struct CsrName {
  const char* name;
  uint16_t number;
};
// The CSRs shown to gdb (a kernel debugger's usual view); every one the hart implements.
constexpr CsrName kCsrs[] = {
    {"sstatus", 0x100},  {"sie", 0x104},      {"stvec", 0x105},    {"scounteren", 0x106}, {"senvcfg", 0x10a},
    {"sscratch", 0x140}, {"sepc", 0x141},     {"scause", 0x142},   {"stval", 0x143},      {"sip", 0x144},
    {"stimecmp", 0x14d}, {"satp", 0x180},     {"mstatus", 0x300},  {"misa", 0x301},       {"medeleg", 0x302},
    {"mideleg", 0x303},  {"mie", 0x304},      {"mtvec", 0x305},    {"mcounteren", 0x306}, {"menvcfg", 0x30a},
    {"mscratch", 0x340}, {"mepc", 0x341},     {"mcause", 0x342},   {"mtval", 0x343},      {"mip", 0x344},
    {"tselect", 0x7a0},  {"tdata1", 0x7a1},   {"tdata2", 0x7a2},   {"mcycle", 0xb00},     {"minstret", 0xb02},
    {"cycle", 0xc00},    {"time", 0xc01},     {"instret", 0xc02},  {"mhartid", 0xf14},
};

constexpr const char* kAbiNames[32] = {"zero", "ra", "sp", "gp", "tp",  "t0",  "t1", "t2", "fp", "s1", "a0",
                                       "a1",   "a2", "a3", "a4", "a5",  "a6",  "a7", "s2", "s3", "s4", "s5",
                                       "s6",   "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6"};
constexpr const char* kFloatNames[32] = {"ft0", "ft1", "ft2",  "ft3",  "ft4", "ft5", "ft6",  "ft7",
                                         "fs0", "fs1", "fa0",  "fa1",  "fa2", "fa3", "fa4",  "fa5",
                                         "fa6", "fa7", "fs2",  "fs3",  "fs4", "fs5", "fs6",  "fs7",
                                         "fs8", "fs9", "fs10", "fs11", "ft8", "ft9", "ft10", "ft11"};

bool isKnownCsr(uint16_t csr) {
  if (csr == kFflags || csr == kFrm || csr == kFcsr) return true;
  for (const CsrName& entry : kCsrs)
    if (entry.number == csr) return true;
  return false;
}

std::string buildTargetXml() {
  std::string xml =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n"
      "<architecture>riscv:rv64</architecture>\n<feature name=\"org.gnu.gdb.riscv.cpu\">\n";
  for (unsigned i = 0; i < 32; ++i) {
    const char* type = i == 1 ? "code_ptr" : (i == 2 || i == 8) ? "data_ptr" : "int";
    xml += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"{}\" regnum=\"{}\"/>\n", kAbiNames[i], type, i);
  }
  xml += fmt::format("<reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"{}\"/>\n</feature>\n", kPc);
  xml +=
      "<feature name=\"org.gnu.gdb.riscv.fpu\">\n<union id=\"riscv_double\"><field name=\"float\" "
      "type=\"ieee_single\"/><field name=\"double\" type=\"ieee_double\"/></union>\n";
  for (unsigned i = 0; i < 32; ++i)
    xml += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"riscv_double\" regnum=\"{}\"/>\n", kFloatNames[i],
                       kFirstFloat + i);
  for (auto [name, csr] : {std::pair{"fflags", kFflags}, {"frm", kFrm}, {"fcsr", kFcsr}})
    xml += fmt::format("<reg name=\"{}\" bitsize=\"32\" type=\"int\" regnum=\"{}\"/>\n", name, kFirstCsr + csr);
  xml += "</feature>\n<feature name=\"org.gnu.gdb.riscv.csr\">\n";
  for (const CsrName& entry : kCsrs)
    xml += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>\n", entry.name,
                       kFirstCsr + entry.number);
  xml += fmt::format(
      "</feature>\n<feature name=\"org.gnu.gdb.riscv.virtual\">\n<reg name=\"priv\" bitsize=\"64\" type=\"int\" "
      "regnum=\"{}\"/>\n</feature>\n</target>\n",
      kPriv);
  return xml;
}

unsigned csrBytes(uint16_t csr) { return csr == kFflags || csr == kFrm || csr == kFcsr ? 4 : 8; }

}  // namespace

const std::string& gdbTargetXml() {
  static const std::string xml = buildTargetXml();
  return xml;
}

std::optional<std::string> readGdbRegister(const cpu::Hart& hart, unsigned number) {
  if (number < 32) return toHexLittleEndian(hart.xreg(number), 8);
  if (number == kPc) return toHexLittleEndian(hart.pc(), 8);
  if (number < kFirstCsr) return toHexLittleEndian(hart.freg(number - kFirstFloat), 8);
  if (number == kPriv) return toHexLittleEndian(static_cast<uint64_t>(hart.privilege()), 8);
  if (number >= kPriv || !isKnownCsr(static_cast<uint16_t>(number - kFirstCsr))) return std::nullopt;
  const auto csr = static_cast<uint16_t>(number - kFirstCsr);
  auto value = hart.readCsr(csr);
  if (!value) return std::string(2 * csrBytes(csr), 'x');
  return toHexLittleEndian(*value, csrBytes(csr));
}

bool writeGdbRegister(cpu::Hart& hart, unsigned number, std::string_view hex) {
  const unsigned bytes =
      number > kFirstCsr && number < kPriv ? csrBytes(static_cast<uint16_t>(number - kFirstCsr)) : 8;
  auto value = fromHexLittleEndian(hex, bytes);
  if (!value) return false;
  if (number < 32) {
    hart.setXreg(number, *value);
    return true;
  }
  if (number == kPc) {
    hart.setPc(*value);
    return true;
  }
  if (number < kFirstCsr) {
    hart.setFreg(number - kFirstFloat, *value);
    return true;
  }
  if (number == kPriv) {
    if (*value != 0 && *value != 1 && *value != 3) return false;
    hart.setPrivilege(static_cast<cpu::Privilege>(*value));
    return true;
  }
  if (number > kPriv || !isKnownCsr(static_cast<uint16_t>(number - kFirstCsr))) return false;
  return hart.writeCsr(static_cast<uint16_t>(number - kFirstCsr), *value);
}

}  // namespace strata::vmm
