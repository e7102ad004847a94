#include "base/state_stream.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

std::vector<uint8_t> sampleFile() {
  StateWriter writer;
  writer.beginSection("uart", 2);
  writer.put<uint8_t>(0x5a);
  writer.put<uint64_t>(0x1122334455667788ull);
  writer.putString("hello");
  writer.endSection();
  writer.beginSection("rtc", 1);
  writer.put<int32_t>(-7);
  writer.endSection();
  return writer.finish();
}

TEST(StateStream, RoundTripsTypedValuesBySection) {
  auto reader = StateReader::parse(sampleFile());
  ASSERT_TRUE(reader.ok()) << reader.error().message;
  auto rtcVersion = reader->enterSection("rtc", 1);  // any order
  ASSERT_TRUE(rtcVersion.ok());
  EXPECT_EQ(*rtcVersion, 1u);
  EXPECT_EQ(reader->get<int32_t>(), -7);
  EXPECT_TRUE(reader->leaveSection().ok());
  ASSERT_TRUE(reader->enterSection("uart", 5).ok());
  EXPECT_EQ(reader->get<uint8_t>(), 0x5a);
  EXPECT_EQ(reader->get<uint64_t>(), 0x1122334455667788ull);
  EXPECT_EQ(reader->getString(16), "hello");
  EXPECT_TRUE(reader->leaveSection().ok());
}

TEST(StateStream, RefusesEveryTruncation) {
  std::vector<uint8_t> file = sampleFile();
  for (size_t length = 0; length < file.size(); ++length) {
    auto reader = StateReader::parse(std::vector<uint8_t>(file.begin(), file.begin() + static_cast<ptrdiff_t>(length)));
    EXPECT_FALSE(reader.ok()) << "accepted a file cut to " << length << " bytes";
  }
}

TEST(StateStream, RefusesAnyFlippedPayloadByte) {
  std::vector<uint8_t> file = sampleFile();
  for (size_t at = 24; at < file.size(); ++at) {
    std::vector<uint8_t> damaged = file;
    damaged[at] ^= 0x40;
    auto reader = StateReader::parse(std::move(damaged));
    ASSERT_FALSE(reader.ok());
    EXPECT_NE(reader.error().message.find("checksum"), std::string::npos) << reader.error().message;
  }
}

TEST(StateStream, RefusesForeignMagicAndFormatVersion) {
  std::vector<uint8_t> file = sampleFile();
  std::vector<uint8_t> foreign = file;
  foreign[0] = 'X';
  EXPECT_EQ(StateReader::parse(foreign).error().message, "not a strata state file");
  std::vector<uint8_t> future = file;
  future[8] = 99;
  auto reader = StateReader::parse(future);
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.error().message.find("format version 99"), std::string::npos) << reader.error().message;
}

TEST(StateStream, RefusesNewerSectionVersionAndMissingSection) {
  auto reader = StateReader::parse(sampleFile());
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader->enterSection("uart", 1).ok());
  EXPECT_FALSE(reader->enterSection("plic", 1).ok());
}

TEST(StateStream, ReadsPastTheSectionFailWithoutTouchingOtherSections) {
  auto reader = StateReader::parse(sampleFile());
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader->enterSection("rtc", 1).ok());
  EXPECT_EQ(reader->get<int32_t>(), -7);
  EXPECT_EQ(reader->get<uint64_t>(), 0u);  // would read the next section: refused
  auto left = reader->leaveSection();
  ASSERT_FALSE(left.ok());
  EXPECT_NE(left.error().message.find("'rtc'"), std::string::npos) << left.error().message;
}

TEST(StateStream, OversizedByteArrayIsAnError) {
  auto reader = StateReader::parse(sampleFile());
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader->enterSection("uart", 2).ok());
  reader->get<uint8_t>();
  reader->get<uint64_t>();
  EXPECT_EQ(reader->getString(3), "");  // "hello" is longer than allowed
  EXPECT_FALSE(reader->leaveSection().ok());
}

TEST(StateStream, UnreadBytesAreAnError) {
  auto reader = StateReader::parse(sampleFile());
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader->enterSection("uart", 2).ok());
  reader->get<uint8_t>();
  EXPECT_FALSE(reader->leaveSection().ok());
}

}  // namespace
}  // namespace strata
