#include <gtest/gtest.h>

#include "base/state_stream.h"
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {

using namespace as;

class HartSnapshotTest : public CpuTest {
 protected:
  // A register-only loop, so two harts can run it over the same RAM.
  void loadLoop() {
    loadWords(kRamBase, {addi(a0, a0, 3), add(a1, a1, a0), mul(a2, a1, a0), xor_(a3, a3, a2), jal(zero, -16)});
  }
  std::unique_ptr<Hart> freshHart() {
    return std::make_unique<Hart>(0, PhysicalMemory{kRamBase, kRamSize, ram_.get(), &mmio_}, host_);
  }
};

TEST_F(HartSnapshotTest, RestoredHartContinuesExactlyWhereTheSavedOneWas) {
  loadLoop();
  hart().writeCsr(csr::kMscratch, 0x1234);
  hart().writeCsr(csr::kStvec, 0x80001000);
  hart().writeCsr(csr::kMie, 0x222);
  hart().setFreg(7, 0x400921fb54442d18ull);
  hart().step(1003);  // stops mid-loop

  StateWriter writer;
  hart().save(writer);
  auto reader = StateReader::parse(writer.finish());
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  auto restored = freshHart();
  auto loaded = restored->load(*reader);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;

  EXPECT_EQ(restored->pc(), hart().pc());
  EXPECT_EQ(restored->privilege(), hart().privilege());
  EXPECT_EQ(restored->freg(7), 0x400921fb54442d18ull);
  for (uint16_t number : {csr::kMscratch, csr::kStvec, csr::kMie, csr::kMstatus, csr::kPmpaddr0, csr::kPmpcfg0,
                          csr::kMinstret})
    EXPECT_EQ(restored->readCsr(number), hart().readCsr(number)) << "csr " << number;

  hart().step(777);
  restored->step(777);
  for (unsigned r = 0; r < 32; ++r) EXPECT_EQ(restored->xreg(r), hart().xreg(r)) << "x" << r;
  EXPECT_EQ(restored->pc(), hart().pc());
  EXPECT_EQ(restored->instructionsRetired(), hart().instructionsRetired());
}

TEST_F(HartSnapshotTest, InvalidPrivilegeIsRefused) {
  StateWriter writer;
  hart().save(writer);
  std::vector<uint8_t> file = writer.finish();
  // The section ends with: privilege byte, pmpcfg (length + 64 bytes), mip, mtimecmp.
  size_t privilegeAt = file.size() - 8 - 8 - (8 + 64) - 1;
  file[privilegeAt] = 2;  // the reserved mode
  // Re-framed through a writer so the checksum is valid and only the value is wrong.
  StateWriter forged;
  forged.beginSection("hart0", 1);
  // Body = everything after the 24-byte header and the section header ("hart0": 2 + 5 + 4 + 8).
  std::vector<uint8_t> body(file.begin() + 24 + 19, file.end());
  for (uint8_t byte : body) forged.put(byte);
  forged.endSection();
  auto forgedReader = StateReader::parse(forged.finish());
  ASSERT_TRUE(forgedReader.ok());
  auto loaded = freshHart()->load(*forgedReader);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message.find("privilege"), std::string::npos) << loaded.error().message;
}

}  // namespace
}  // namespace strata::cpu::test
