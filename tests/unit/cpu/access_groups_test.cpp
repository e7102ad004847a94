// planAccessGroups: which loads and stores of a translation share one TLB
// probe (same value plus constants, no helper call in between, one addend
// register so no overlapping groups).
#include <gtest/gtest.h>

#include "cpu/jit/access_groups.h"
#include "cpu_test_support.h"

namespace strata::cpu::test {
namespace {
using namespace as;
using jit::AccessGroupPlan;
using jit::planAccessGroups;

AccessGroupPlan plan(const std::vector<uint32_t>& words) {
  std::vector<DecodedInsn> insns;
  for (size_t i = 0; i < words.size(); ++i) {
    insns.push_back(decodeAny(words[i]));
    insns.back().pcOffset = static_cast<uint16_t>(4 * i);
  }
  return planAccessGroups(insns);
}

TEST(AccessGroups, MemsetUnrolledStoresAreOneGroup) {
  // glibc's memset loop: eight stores off a5, then the pointer moves on.
  const AccessGroupPlan p = plan({sd(a4, a5, 0), sd(a4, a5, 8), sd(a4, a5, 16), sd(a4, a5, 24), sd(a4, a5, 32),
                                  sd(a4, a5, 40), sd(a4, a5, 48), sd(a4, a5, 56), addi(a5, a5, 64),
                                  bne(a5, a3, -36)});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].first, 0u);
  EXPECT_EQ(p.groups[0].last, 7u);
  EXPECT_EQ(p.groups[0].low, 0);
  EXPECT_EQ(p.groups[0].span, 64u);
  EXPECT_TRUE(p.groups[0].write);
  EXPECT_EQ(p.groupOf[8], -1);
}

TEST(AccessGroups, AddiDerivedBasesJoinTheirRootsGroup) {
  // t4 = a1 + 8 and a0 = a1 + 16 address the same block as a1 itself; a load
  // into a1 starts a new value, so the last access is not a member.
  const AccessGroupPlan p = plan({ld(t3, a1, 8), addi(t4, a1, 8), sd(t3, t4, -16), addi(a0, a1, 16),
                                  lw(a2, a0, 4), ld(a1, a1, 0), ld(a3, a1, 0)});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].first, 0u);
  EXPECT_EQ(p.groups[0].last, 5u);
  EXPECT_EQ(p.groups[0].low, -16);  // the sd at a1 - 8, relative to the first member at a1 + 8
  EXPECT_EQ(p.groups[0].span, 32u);  // a1 - 8 .. a1 + 24
  EXPECT_EQ(p.groupOf[2], 0);
  EXPECT_EQ(p.groupOf[4], 0);
  EXPECT_EQ(p.groupOf[6], -1);
}

TEST(AccessGroups, HelperCallsAndSkippedUpdatesSplitGroups) {
  // div is a helper call (it would clobber the addend): the loads around it
  // are not one group. An addi a forward branch may skip does not keep its
  // register's value: the load after it starts over.
  const AccessGroupPlan split = plan({ld(a2, s1, 0), div(a3, a3, a4), ld(a2, s1, 8)});
  EXPECT_TRUE(split.groups.empty());
  const AccessGroupPlan skipped = plan({ld(a2, s1, 0), beq(a2, zero, 8), addi(s1, s1, 8), ld(a3, s1, 0)});
  EXPECT_TRUE(skipped.groups.empty());
}

TEST(AccessGroups, OverlappingGroupsShareAClusterWithTwoAddends) {
  // A copy loop: loads off s1 and stores off s2, interleaved. The stores'
  // group takes the second addend register; the two are one cluster.
  const AccessGroupPlan copy = plan({ld(a2, s1, 0), sd(a2, s2, 0), ld(a3, s1, 8), sd(a3, s2, 8), ld(a4, s1, 16)});
  ASSERT_EQ(copy.groups.size(), 2u);
  ASSERT_EQ(copy.clusters.size(), 1u);
  EXPECT_EQ(copy.clusters[0].first, 0u);
  EXPECT_EQ(copy.clusters[0].last, 4u);
  EXPECT_EQ(copy.groupOf[0], 0);
  EXPECT_EQ(copy.groupOf[1], 1);
  EXPECT_EQ(copy.groups[0].addend, 0u);
  EXPECT_EQ(copy.groups[1].addend, 1u);
  EXPECT_FALSE(copy.groups[0].write);
  EXPECT_TRUE(copy.groups[1].write);
  // An access of neither group inside the smaller one's range would need
  // the second addend register for its own probe: that group is dropped.
  const AccessGroupPlan crowded =
      plan({ld(a2, s1, 0), sd(a2, s2, 0), ld(a5, s3, 0), sd(a3, s2, 8), ld(a3, s1, 8), ld(a4, s1, 16)});
  ASSERT_EQ(crowded.groups.size(), 1u);
  EXPECT_EQ(crowded.groupOf[1], -1);
  EXPECT_EQ(crowded.groupOf[5], 0);
}

TEST(AccessGroups, SpansStayBounded) {
  const AccessGroupPlan far = plan({ld(a2, s1, 0), ld(a3, s1, 1024)});
  EXPECT_TRUE(far.groups.empty());
}

}  // namespace
}  // namespace strata::cpu::test
