# RV64D: every double-precision instruction with bit-exact results and fflags,
# static rounding modes, the canonical NaN 0x7ff8000000000000, the S<->D
# conversions (including NaN-boxing of single inputs), fld/fsd and the
# fmv.x.d/fmv.d.x moves. Constants: 1.0 = 0x3ff0000000000000, 2.0 =
# 0x4000000000000000, 3.0 = 0x4008000000000000, 1.5 = 0x3ff8.., 2.5 =
# 0x4004.., 0.5 = 0x3fe0... 1/3 = 1.0101..b x 2^-2: the 52 kept fraction bits
# are 0x5555555555555 and the bits cut off (0101..) are below half an ulp, so
# RNE/RTZ/RDN give 0x3fd5555555555555 and RUP 0x3fd5555555555556.
# sqrt(2) = 1.41421356237309504880.. lies between 0x3ff6a09e667f3bcc and
# 0x3ff6a09e667f3bcd = 1.41421356237309514547.., nearer the latter.
#include "test_macros.h"
#define NV 0x10
#define DZ 0x08
#define OF 0x04
#define UF 0x02
#define NX 0x01
#define QNAN 0x7ff8000000000000
#define SNAN 0x7ff0000000000001
#define INF 0x7ff0000000000000
#define NINF 0xfff0000000000000
#define MAXD 0x7fefffffffffffff
#define ONE 0x3ff0000000000000
#define MONE 0xbff0000000000000
#define TWO 0x4000000000000000
#define THREE 0x4008000000000000
  .data
  .align 3
ddata:
  .dword 0x400921fb54442d18, 0    # pi
  .text
TEST_BEGIN
  # ---- fadd.d / fsub.d
  TEST_FP_D2(1, fadd.d, 0, THREE, ONE, TWO)
  TEST_FP_D2(2, fadd.d, NV, QNAN, INF, NINF)
  TEST_FP_D2(3, fadd.d, NV, QNAN, SNAN, ONE)
  TEST_FP_D2(4, fadd.d, 0, QNAN, 0x7ff8000000001234, ONE)
  TEST_FP_D2(5, fadd.d, OF|NX, INF, MAXD, MAXD)
  TEST_FP_D2_RM(6, fadd.d, rtz, OF|NX, MAXD, MAXD, MAXD)
  # 1 + 2^-53 (0x3ca0..) is a tie between 1 and 1 + 2^-52.
  TEST_FP_D2_RM(7, fadd.d, rne, NX, ONE, ONE, 0x3ca0000000000000)
  TEST_FP_D2_RM(8, fadd.d, rmm, NX, 0x3ff0000000000001, ONE, 0x3ca0000000000000)
  TEST_FP_D2_RM(9, fadd.d, rup, NX, 0x3ff0000000000001, ONE, 0x3ca0000000000000)
  TEST_FP_D2_RM(10, fadd.d, rdn, NX, 0xbff0000000000001, MONE, 0xbca0000000000000)
  TEST_FP_D2_RM(11, fadd.d, rtz, NX, 0xbff0000000000000, MONE, 0xbca0000000000000)
  TEST_FP_D2_RM(12, fadd.d, rdn, 0, 0x8000000000000000, ONE, MONE)   # exact zero is -0 when rounding down
  TEST_FP_D2(13, fsub.d, 0, TWO, THREE, ONE)
  TEST_FP_D2(14, fsub.d, NV, QNAN, NINF, NINF)

  # ---- fmul.d / fdiv.d / fsqrt.d
  TEST_FP_D2(20, fmul.d, 0, 0x4018000000000000, TWO, THREE)          # 6
  TEST_FP_D2(21, fmul.d, NV, QNAN, INF, 0)
  TEST_FP_D2(22, fmul.d, UF|NX, 0, 0x0000000000000001, 0x3fe0000000000000)  # 2^-1075 ties to 0
  TEST_FP_D2_RM(23, fmul.d, rup, UF|NX, 1, 0x0000000000000001, 0x3fe0000000000000)
  TEST_FP_D2(24, fmul.d, 0, 0x0008000000000000, 0x0010000000000000, 0x3fe0000000000000) # exact subnormal
  TEST_FP_D2(25, fdiv.d, NX, 0x3fd5555555555555, ONE, THREE)
  TEST_FP_D2_RM(26, fdiv.d, rup, NX, 0x3fd5555555555556, ONE, THREE)
  TEST_FP_D2_RM(27, fdiv.d, rtz, NX, 0x3fd5555555555555, ONE, THREE)
  TEST_FP_D2_RM(28, fdiv.d, rdn, NX, 0xbfd5555555555556, MONE, THREE)
  TEST_FP_D2_RM(29, fdiv.d, rmm, NX, 0x3fd5555555555555, ONE, THREE)
  TEST_FP_D2(30, fdiv.d, DZ, NINF, MONE, 0)
  TEST_FP_D2(31, fdiv.d, NV, QNAN, 0, 0)
  TEST_FP_D2(32, fdiv.d, NV, QNAN, INF, NINF)
  TEST_FP_D1(33, fsqrt.d, NX, 0x3ff6a09e667f3bcd, TWO)
  li TESTNUM, 34; LOAD_D(fa0, TWO); CLEAR_FLAGS; fsqrt.d fa3, fa0, rtz; CHECK_FLAGS(NX); CHECK_FD(fa3, 0x3ff6a09e667f3bcc)
  li TESTNUM, 35; LOAD_D(fa0, TWO); CLEAR_FLAGS; fsqrt.d fa3, fa0, rup; CHECK_FLAGS(NX); CHECK_FD(fa3, 0x3ff6a09e667f3bcd)
  TEST_FP_D1(36, fsqrt.d, 0, 0x4008000000000000, 0x4022000000000000) # sqrt 9 = 3
  TEST_FP_D1(37, fsqrt.d, NV, QNAN, 0xbff0000000000000)
  TEST_FP_D1(38, fsqrt.d, 0, 0x8000000000000000, 0x8000000000000000)

  # ---- min/max and sign injection
  TEST_FP_D2(40, fmin.d, 0, MONE, ONE, MONE)
  TEST_FP_D2(41, fmax.d, 0, ONE, ONE, MONE)
  TEST_FP_D2(42, fmin.d, 0, 0x8000000000000000, 0, 0x8000000000000000)
  TEST_FP_D2(43, fmax.d, 0, 0, 0x8000000000000000, 0)
  TEST_FP_D2(44, fmin.d, NV, ONE, SNAN, ONE)
  TEST_FP_D2(45, fmax.d, 0, QNAN, QNAN, 0xfff8000000000001)
  TEST_FP_D2(46, fsgnj.d, 0, MONE, ONE, 0xc000000000000000)
  TEST_FP_D2(47, fsgnjn.d, 0, ONE, ONE, 0xc000000000000000)
  TEST_FP_D2(48, fsgnjx.d, 0, ONE, MONE, MONE)
  TEST_FP_D2(49, fsgnj.d, 0, 0xfff0000000000001, SNAN, MONE)

  # ---- fused multiply-add: (1+2^-52)(1-2^-53) - 1 = 2^-53 - 2^-105 exactly
  #      = (2^52-1) x 2^-105: exponent -54 (0x3c9), fraction 0xffffffffffffe.
  TEST_FP_D3(50, fmadd.d, 0, 0x401c000000000000, TWO, THREE, ONE)    # 7
  TEST_FP_D3(51, fmsub.d, 0, 0x4014000000000000, TWO, THREE, ONE)    # 5
  TEST_FP_D3(52, fnmsub.d, 0, 0xc014000000000000, TWO, THREE, ONE)   # -5
  TEST_FP_D3(53, fnmadd.d, 0, 0xc01c000000000000, TWO, THREE, ONE)   # -7
  TEST_FP_D3(54, fmadd.d, 0, 0x3c9ffffffffffffe, 0x3ff0000000000001, 0x3fefffffffffffff, MONE)
  TEST_FP_D3(55, fmadd.d, NV, QNAN, 0, INF, QNAN)
  TEST_FP_D3(56, fnmsub.d, NV, QNAN, SNAN, ONE, ONE)

  # ---- double -> integer
  TEST_FP_TO_INT_D_RM(60, fcvt.w.d, rne, NX, 2, 0x3ff8000000000000)
  TEST_FP_TO_INT_D_RM(61, fcvt.w.d, rtz, NX, 1, 0x3ff8000000000000)
  TEST_FP_TO_INT_D_RM(62, fcvt.w.d, rdn, NX, -2, 0xbff8000000000000)
  TEST_FP_TO_INT_D_RM(63, fcvt.w.d, rup, NX, -1, 0xbff8000000000000)
  TEST_FP_TO_INT_D_RM(64, fcvt.w.d, rmm, NX, 3, 0x4004000000000000)
  # 2^31 - 0.5 (0x41dfffffffe00000): RNE rounds to 2^31, out of range; RTZ fits.
  TEST_FP_TO_INT_D_RM(65, fcvt.w.d, rne, NV, 0x7fffffff, 0x41dfffffffe00000)
  TEST_FP_TO_INT_D_RM(66, fcvt.w.d, rtz, NX, 0x7fffffff, 0x41dfffffffe00000)
  # -2^31 - 0.5 (0xc1e0000000100000): RNE ties to even -2^31; RDN overflows.
  TEST_FP_TO_INT_D_RM(67, fcvt.w.d, rne, NX, 0xffffffff80000000, 0xc1e0000000100000)
  TEST_FP_TO_INT_D_RM(68, fcvt.w.d, rdn, NV, 0xffffffff80000000, 0xc1e0000000100000)
  TEST_FP_TO_INT_D_RM(69, fcvt.w.d, rtz, NV, 0x7fffffff, QNAN)
  TEST_FP_TO_INT_D_RM(70, fcvt.wu.d, rtz, 0, 0xffffffffffffffff, 0x41efffffffe00000)  # 2^32-1, sign-extended
  TEST_FP_TO_INT_D_RM(71, fcvt.wu.d, rtz, NV, 0, MONE)
  TEST_FP_TO_INT_D_RM(72, fcvt.wu.d, rne, NX, 0, 0xbfe0000000000000)  # -0.5 -> -0: inexact only
  TEST_FP_TO_INT_D_RM(73, fcvt.wu.d, rdn, NV, 0, 0xbfe0000000000000)  # -0.5 down -> -1: invalid
  TEST_FP_TO_INT_D_RM(74, fcvt.l.d, rtz, NV, 0x7fffffffffffffff, 0x43e0000000000000)  # 2^63
  TEST_FP_TO_INT_D_RM(75, fcvt.l.d, rtz, 0, 0x8000000000000000, 0xc3e0000000000000)
  TEST_FP_TO_INT_D_RM(76, fcvt.l.d, rtz, NV, 0x8000000000000000, NINF)
  TEST_FP_TO_INT_D_RM(77, fcvt.l.d, rmm, NX, -3, 0xc004000000000000)  # -2.5 away -> -3
  TEST_FP_TO_INT_D_RM(78, fcvt.lu.d, rtz, 0, 0xfffffffffffff800, 0x43efffffffffffff)  # largest double < 2^64
  TEST_FP_TO_INT_D_RM(79, fcvt.lu.d, rtz, NV, 0xffffffffffffffff, 0x43f0000000000000)
  TEST_FP_TO_INT_D_RM(80, fcvt.lu.d, rtz, NV, 0xffffffffffffffff, SNAN)
  TEST_FP_TO_INT_D_RM(81, fcvt.lu.d, rup, NX, 1, 0x3cb0000000000000)   # tiny positive up -> 1

  # ---- integer -> double
  TEST_INT_TO_FP_D(85, fcvt.d.w, 0, 0xc014000000000000, -5)
  TEST_INT_TO_FP_D(86, fcvt.d.w, 0, 0xc1e0000000000000, 0x1234567880000000)   # low word -2^31
  TEST_INT_TO_FP_D(87, fcvt.d.wu, 0, 0x41efffffffe00000, 0xffffffff)           # exact
  TEST_INT_TO_FP_D(88, fcvt.d.wu, 0, 0x41e0000000000000, 0xffffffff80000000)   # low word 2^31 unsigned
  TEST_INT_TO_FP_D(89, fcvt.d.l, NX, 0x43e0000000000000, 0x7fffffffffffffff)
  TEST_INT_TO_FP_D_RM(90, fcvt.d.l, rtz, NX, 0x43dfffffffffffff, 0x7fffffffffffffff)
  TEST_INT_TO_FP_D(91, fcvt.d.l, 0, 0xc3e0000000000000, 0x8000000000000000)
  TEST_INT_TO_FP_D(92, fcvt.d.lu, NX, 0x43f0000000000000, 0xffffffffffffffff)
  TEST_INT_TO_FP_D_RM(93, fcvt.d.lu, rdn, NX, 0x43efffffffffffff, 0xffffffffffffffff)
  TEST_INT_TO_FP_D_RM(94, fcvt.d.lu, rne, NX, 0x4340000000000000, 0x20000000000001)   # 2^53+1 ties to 2^53
  TEST_INT_TO_FP_D_RM(95, fcvt.d.lu, rmm, NX, 0x4340000000000001, 0x20000000000001)

  # ---- single <-> double
  li TESTNUM, 100; LOAD_S(fa0, 0x3eaaaaab); CLEAR_FLAGS; fcvt.d.s fa3, fa0; CHECK_FLAGS(0); CHECK_FD(fa3, 0x3fd5555560000000)
  li TESTNUM, 101; LOAD_S(fa0, 0x00000001); CLEAR_FLAGS; fcvt.d.s fa3, fa0; CHECK_FLAGS(0); CHECK_FD(fa3, 0x36a0000000000000)  # 2^-149
  li TESTNUM, 102; LOAD_S(fa0, 0x7f800001); CLEAR_FLAGS; fcvt.d.s fa3, fa0; CHECK_FLAGS(NV); CHECK_FD(fa3, QNAN)
  li TESTNUM, 103; LOAD_D(fa0, 0x000000003f800000); CLEAR_FLAGS; fcvt.d.s fa3, fa0; CHECK_FLAGS(0); CHECK_FD(fa3, QNAN) # not NaN-boxed
  li TESTNUM, 104; LOAD_S(fa0, 0xff800000); CLEAR_FLAGS; fcvt.d.s fa3, fa0; CHECK_FLAGS(0); CHECK_FD(fa3, NINF)
  TEST_FP_D1(105, fcvt.s.d, NX, 0xffffffff3eaaaaab, 0x3fd5555555555555)
  li TESTNUM, 106; LOAD_D(fa0, 0x3fd5555555555555); CLEAR_FLAGS; fcvt.s.d fa3, fa0, rtz; CHECK_FLAGS(NX); CHECK_FS(fa3, 0x3eaaaaaa)
  TEST_FP_D1(107, fcvt.s.d, OF|NX, 0xffffffff7f800000, MAXD)
  li TESTNUM, 108; LOAD_D(fa0, MAXD); CLEAR_FLAGS; fcvt.s.d fa3, fa0, rtz; CHECK_FLAGS(OF|NX); CHECK_FS(fa3, 0x7f7fffff)
  TEST_FP_D1(109, fcvt.s.d, NV, 0xffffffff7fc00000, SNAN)
  TEST_FP_D1(110, fcvt.s.d, UF|NX, 0xffffffff00000000, 0x1000000000000000)  # 2^-767 -> 0
  li TESTNUM, 111; LOAD_D(fa0, 0x1000000000000000); CLEAR_FLAGS; fcvt.s.d fa3, fa0, rup; CHECK_FLAGS(UF|NX); CHECK_FS(fa3, 0x00000001)
  TEST_FP_D1(112, fcvt.s.d, 0, 0xffffffff3f800000, ONE)

  # ---- moves, compares, fclass
  TEST_FP_TO_INT_D(120, fmv.x.d, 0, SNAN, SNAN)                 # bits unchanged
  TEST_INT_TO_FP_D(121, fmv.d.x, 0, 0x0123456789abcdef, 0x0123456789abcdef)
  TEST_FP_CMP_D(122, feq.d, 0, 1, 0x8000000000000000, 0)
  TEST_FP_CMP_D(123, feq.d, NV, 0, SNAN, SNAN)
  TEST_FP_CMP_D(124, feq.d, 0, 0, QNAN, QNAN)
  TEST_FP_CMP_D(125, flt.d, 0, 1, NINF, MAXD)
  TEST_FP_CMP_D(126, flt.d, NV, 0, ONE, QNAN)
  TEST_FP_CMP_D(127, fle.d, 0, 1, ONE, ONE)
  TEST_FP_CMP_D(128, fle.d, NV, 0, QNAN, ONE)
  TEST_FP_TO_INT_D(130, fclass.d, 0, 0x001, NINF)
  TEST_FP_TO_INT_D(131, fclass.d, 0, 0x002, MONE)
  TEST_FP_TO_INT_D(132, fclass.d, 0, 0x004, 0x800fffffffffffff)
  TEST_FP_TO_INT_D(133, fclass.d, 0, 0x008, 0x8000000000000000)
  TEST_FP_TO_INT_D(134, fclass.d, 0, 0x010, 0)
  TEST_FP_TO_INT_D(135, fclass.d, 0, 0x020, 1)
  TEST_FP_TO_INT_D(136, fclass.d, 0, 0x040, ONE)
  TEST_FP_TO_INT_D(137, fclass.d, 0, 0x080, INF)
  TEST_FP_TO_INT_D(138, fclass.d, 0, 0x100, SNAN)
  TEST_FP_TO_INT_D(139, fclass.d, 0, 0x200, QNAN)

  # ---- fld/fsd
  TEST_CASE(140, a0, 0x400921fb54442d18, la a1, ddata; fld fa4, 0(a1); fmv.x.d a0, fa4)
  TEST_CASE(141, a0, 0x400921fb54442d18, fsd fa4, 8(a1); ld a0, 8(a1))
  TEST_CASE(142, a0, 0xffffffff3f800000, LOAD_S(fa4, 0x3f800000); fsd fa4, 8(a1); ld a0, 8(a1))  # fsd stores the boxed bits
  # Dynamic rounding with frm = RUP on 1/3.
  TEST_CASE(143, a0, 0x3fd5555555555556, csrwi frm, 3; LOAD_D(fa0, ONE); LOAD_D(fa1, THREE); fdiv.d fa2, fa0, fa1, dyn; fmv.x.d a0, fa2)
  csrwi fcsr, 0
  TEST_PASS
