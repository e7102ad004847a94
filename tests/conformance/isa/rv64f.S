# RV64F: every single-precision instruction, with results as bit patterns and
# the exact fflags each must raise (NV 0x10, DZ 0x08, OF 0x04, UF 0x02, NX 0x01),
# static rounding modes (rne rtz rdn rup rmm), NaN-boxing of results and
# inputs, the canonical NaN 0x7fc00000, and fcsr/frm/fflags behaviour.
# Constants: 1.0 = 0x3f800000, 2.0 = 0x40000000, 3.0 = 0x40400000,
# 1.5 = 0x3fc00000, 2.5 = 0x40200000, 0.5 = 0x3f000000. 1/3 = 1.0101..b x 2^-2:
# the 23 kept fraction bits are 0101..010 (0x3eaaaaaa) and the bits cut off,
# 1010.., are above half an ulp, so RNE/RUP/RMM give 0x3eaaaaab.
#include "test_macros.h"
#define NV 0x10
#define DZ 0x08
#define OF 0x04
#define UF 0x02
#define NX 0x01
#define QNAN 0x7fc00000
#define SNAN 0x7f800001
#define INF 0x7f800000
#define NINF 0xff800000
#define MAXF 0x7f7fffff
#define ONE 0x3f800000
#define MONE 0xbf800000
  .data
  .align 3
fdata:
  .word 0x40490fdb, 0x12345678      # pi, and a word that fsw must leave alone
  .text
TEST_BEGIN
  # ---- fadd.s / fsub.s
  TEST_FP_S2(1, fadd.s, 0, 0x40400000, ONE, 0x40000000)            # 1 + 2 = 3
  TEST_FP_S2(2, fadd.s, 0, 0x3fc00000, 0x40200000, MONE)           # 2.5 - 1 = 1.5
  TEST_FP_S2(3, fadd.s, NV, QNAN, INF, NINF)                       # inf - inf invalid
  TEST_FP_S2(4, fadd.s, NV, QNAN, SNAN, ONE)                       # signalling NaN input
  TEST_FP_S2(5, fadd.s, 0, QNAN, 0x7fc01234, ONE)                  # quiet NaN: canonical result, no flag
  TEST_FP_S2(6, fadd.s, OF|NX, INF, MAXF, MAXF)                    # overflow rounds to inf (RNE)
  TEST_FP_S2_RM(7, fadd.s, rtz, OF|NX, MAXF, MAXF, MAXF)           # ... to max finite (RTZ)
  TEST_FP_S2_RM(8, fadd.s, rdn, OF|NX, MAXF, MAXF, MAXF)
  TEST_FP_S2_RM(9, fadd.s, rup, OF|NX, INF, MAXF, MAXF)
  # 1 + 2^-24 is exactly half an ulp above 1: ties to even / away / directed.
  TEST_FP_S2_RM(10, fadd.s, rne, NX, 0x3f800000, ONE, 0x33800000)
  TEST_FP_S2_RM(11, fadd.s, rmm, NX, 0x3f800001, ONE, 0x33800000)
  TEST_FP_S2_RM(12, fadd.s, rtz, NX, 0x3f800000, ONE, 0x33800000)
  TEST_FP_S2_RM(13, fadd.s, rdn, NX, 0x3f800000, ONE, 0x33800000)
  TEST_FP_S2_RM(14, fadd.s, rup, NX, 0x3f800001, ONE, 0x33800000)
  TEST_FP_S2_RM(15, fadd.s, rdn, NX, 0xbf800001, MONE, 0xb3800000) # -1 - 2^-24 rounded down
  TEST_FP_S2_RM(16, fadd.s, rup, NX, 0xbf800000, MONE, 0xb3800000)
  # x + (-x) is +0, except -0 when rounding down.
  TEST_FP_S2(17, fadd.s, 0, 0x00000000, ONE, MONE)
  TEST_FP_S2_RM(18, fadd.s, rdn, 0, 0x80000000, ONE, MONE)
  TEST_FP_S2(19, fadd.s, 0, 0x80000000, 0x80000000, 0x80000000)    # -0 + -0 = -0
  TEST_FP_S2(20, fsub.s, 0, 0x40000000, 0x40400000, ONE)           # 3 - 1 = 2
  TEST_FP_S2(21, fsub.s, NV, QNAN, INF, INF)
  TEST_FP_S2(22, fsub.s, 0, 0x80000000, 0x80000000, 0x00000000)    # -0 - +0 = -0

  # ---- fmul.s
  TEST_FP_S2(30, fmul.s, 0, 0x40c00000, 0x40000000, 0x40400000)    # 2 * 3 = 6
  TEST_FP_S2(31, fmul.s, NV, QNAN, 0x00000000, INF)                # 0 * inf
  TEST_FP_S2(32, fmul.s, 0, 0x00400000, 0x00800000, 0x3f000000)    # min normal / 2: exact subnormal, no UF
  TEST_FP_S2(33, fmul.s, UF|NX, 0x00000000, 0x00000001, 0x3f000000) # 2^-150: tie to even 0
  TEST_FP_S2_RM(34, fmul.s, rup, UF|NX, 0x00000001, 0x00000001, 0x3f000000)
  TEST_FP_S2(35, fmul.s, OF|NX, NINF, MAXF, 0xc0000000)            # max * -2
  TEST_FP_S2(36, fmul.s, 0, 0x80000000, 0x80000000, 0x40000000)    # -0 * 2 = -0

  # ---- fdiv.s: 1/3 in each rounding mode, division by zero, 0/0.
  TEST_FP_S2(40, fdiv.s, NX, 0x3eaaaaab, ONE, 0x40400000)
  TEST_FP_S2_RM(41, fdiv.s, rtz, NX, 0x3eaaaaaa, ONE, 0x40400000)
  TEST_FP_S2_RM(42, fdiv.s, rdn, NX, 0x3eaaaaaa, ONE, 0x40400000)
  TEST_FP_S2_RM(43, fdiv.s, rup, NX, 0x3eaaaaab, ONE, 0x40400000)
  TEST_FP_S2_RM(44, fdiv.s, rmm, NX, 0x3eaaaaab, ONE, 0x40400000)
  TEST_FP_S2_RM(45, fdiv.s, rdn, NX, 0xbeaaaaab, MONE, 0x40400000)
  TEST_FP_S2_RM(46, fdiv.s, rup, NX, 0xbeaaaaaa, MONE, 0x40400000)
  TEST_FP_S2(47, fdiv.s, DZ, INF, ONE, 0x00000000)
  TEST_FP_S2(48, fdiv.s, DZ, NINF, MONE, 0x00000000)
  TEST_FP_S2(49, fdiv.s, NV, QNAN, 0x00000000, 0x00000000)
  TEST_FP_S2(50, fdiv.s, 0, 0x40400000, 0x40c00000, 0x40000000)    # 6 / 2 = 3 exact
  TEST_FP_S2(51, fdiv.s, 0, 0x00000000, ONE, INF)

  # ---- fsqrt.s: sqrt(2) = 1.41421356.. lies above 0x3fb504f3 = 1.41421353..
  TEST_FP_S1(55, fsqrt.s, 0, 0x40000000, 0x40800000)               # sqrt 4 = 2
  TEST_FP_S1(56, fsqrt.s, NX, 0x3fb504f3, 0x40000000)
  li TESTNUM, 57; LOAD_S(fa0, 0x40000000); CLEAR_FLAGS; fsqrt.s fa3, fa0, rup; CHECK_FLAGS(NX); CHECK_FS(fa3, 0x3fb504f4)
  TEST_FP_S1(58, fsqrt.s, NV, QNAN, MONE)
  TEST_FP_S1(59, fsqrt.s, 0, 0x80000000, 0x80000000)               # sqrt(-0) = -0
  TEST_FP_S1(60, fsqrt.s, 0, INF, INF)

  # ---- fmin.s / fmax.s (IEEE 754-2019 minimumNumber: a NaN loses to a number)
  TEST_FP_S2(65, fmin.s, 0, ONE, ONE, 0x40000000)
  TEST_FP_S2(66, fmax.s, 0, 0x40000000, ONE, 0x40000000)
  TEST_FP_S2(67, fmin.s, 0, 0x80000000, 0x00000000, 0x80000000)    # -0 < +0
  TEST_FP_S2(68, fmax.s, 0, 0x00000000, 0x80000000, 0x00000000)
  TEST_FP_S2(69, fmin.s, 0, ONE, QNAN, ONE)
  TEST_FP_S2(70, fmax.s, NV, ONE, SNAN, ONE)                       # sNaN: NV, still the number
  TEST_FP_S2(71, fmin.s, 0, QNAN, 0x7fc11111, 0xffc22222)          # both NaN: canonical
  TEST_FP_S2(72, fmax.s, 0, MONE, NINF, MONE)

  # ---- sign injection: bit patterns only, no flags, NaN payloads kept
  TEST_FP_S2(75, fsgnj.s, 0, MONE, ONE, 0xc0000000)
  TEST_FP_S2(76, fsgnjn.s, 0, ONE, ONE, 0xc0000000)
  TEST_FP_S2(77, fsgnjx.s, 0, ONE, MONE, 0xc0000000)               # - xor - = +
  TEST_FP_S2(78, fsgnjx.s, 0, MONE, MONE, 0x40000000)
  TEST_FP_S2(79, fsgnj.s, 0, 0xff800001, SNAN, MONE)               # sNaN payload untouched, no NV
  TEST_FP_S1(80, fneg.s, 0, 0x80000000, 0x00000000)
  TEST_FP_S1(81, fabs.s, 0, 0x7fc00001, 0xffc00001)

  # ---- fused multiply-add: one rounding. (1+2^-23)(1-2^-24) - 1 = 2^-24 - 2^-47
  #      = (2^23-1) x 2^-47 exactly: exponent -25 (0x66), fraction 0x7ffffe.
  TEST_FP_S3(85, fmadd.s, 0, 0x40e00000, 0x40000000, 0x40400000, ONE)   # 2*3+1 = 7
  TEST_FP_S3(86, fmsub.s, 0, 0x40a00000, 0x40000000, 0x40400000, ONE)   # 2*3-1 = 5
  TEST_FP_S3(87, fnmsub.s, 0, 0xc0a00000, 0x40000000, 0x40400000, ONE)  # -(2*3)+1 = -5
  TEST_FP_S3(88, fnmadd.s, 0, 0xc0e00000, 0x40000000, 0x40400000, ONE)  # -(2*3)-1 = -7
  TEST_FP_S3(89, fmadd.s, 0, 0x337ffffe, 0x3f800001, 0x3f7fffff, MONE)
  TEST_FP_S3(90, fmadd.s, NV, QNAN, INF, 0x00000000, ONE)
  TEST_FP_S3(91, fmadd.s, NV, QNAN, INF, 0x00000000, QNAN)              # inf*0 is invalid even with a quiet NaN addend
  TEST_FP_S3(92, fmsub.s, NV, QNAN, INF, ONE, INF)                      # inf - inf
  TEST_FP_S3(93, fnmadd.s, 0, 0x80000000, 0x00000000, ONE, 0x00000000)  # -(0*1) - 0 = -0
  li TESTNUM, 94; LOAD_S(fa0, MAXF); LOAD_S(fa1, 0x40000000); LOAD_S(fa2, MONE); CLEAR_FLAGS
  fmadd.s fa3, fa0, fa1, fa2, rtz; CHECK_FLAGS(OF|NX); CHECK_FS(fa3, MAXF)

  # ---- conversions to integer: every rounding mode on +-1.5 and 2.5
  TEST_FP_TO_INT_S_RM(100, fcvt.w.s, rne, NX, 2, 0x3fc00000)
  TEST_FP_TO_INT_S_RM(101, fcvt.w.s, rtz, NX, 1, 0x3fc00000)
  TEST_FP_TO_INT_S_RM(102, fcvt.w.s, rdn, NX, 1, 0x3fc00000)
  TEST_FP_TO_INT_S_RM(103, fcvt.w.s, rup, NX, 2, 0x3fc00000)
  TEST_FP_TO_INT_S_RM(104, fcvt.w.s, rmm, NX, 2, 0x3fc00000)
  TEST_FP_TO_INT_S_RM(105, fcvt.w.s, rne, NX, 2, 0x40200000)       # 2.5 ties to even
  TEST_FP_TO_INT_S_RM(106, fcvt.w.s, rmm, NX, 3, 0x40200000)       # ... away from zero
  TEST_FP_TO_INT_S_RM(107, fcvt.w.s, rne, NX, -2, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(108, fcvt.w.s, rtz, NX, -1, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(109, fcvt.w.s, rdn, NX, -2, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(110, fcvt.w.s, rup, NX, -1, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(111, fcvt.w.s, rmm, NX, -2, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(112, fcvt.w.s, rtz, NV, 0x7fffffff, 0x4f000000)          # 2^31 out of range
  TEST_FP_TO_INT_S_RM(113, fcvt.w.s, rtz, 0, 0xffffffff80000000, 0xcf000000)   # -2^31 fits
  TEST_FP_TO_INT_S_RM(114, fcvt.w.s, rtz, NV, 0x7fffffff, QNAN)                # NaN -> max
  TEST_FP_TO_INT_S_RM(115, fcvt.w.s, rtz, NV, 0xffffffff80000000, NINF)
  TEST_FP_TO_INT_S_RM(116, fcvt.wu.s, rtz, NV, 0, MONE)                        # negative -> 0
  TEST_FP_TO_INT_S_RM(117, fcvt.wu.s, rtz, NX, 0, 0xbf000000)                  # -0.5 -> 0 only inexact
  TEST_FP_TO_INT_S_RM(118, fcvt.wu.s, rtz, 0, 0xffffffffb2d05e00, 0x4f32d05e)  # 3e9: 32-bit result sign-extended
  TEST_FP_TO_INT_S_RM(119, fcvt.wu.s, rtz, NV, 0xffffffffffffffff, 0x4f800000) # 2^32 -> 0xffffffff, sign-extended
  TEST_FP_TO_INT_S_RM(120, fcvt.wu.s, rtz, NV, 0xffffffffffffffff, QNAN)
  TEST_FP_TO_INT_S_RM(121, fcvt.l.s, rtz, NV, 0x7fffffffffffffff, 0x5f000000)  # 2^63
  TEST_FP_TO_INT_S_RM(122, fcvt.l.s, rtz, 0, 0x8000000000000000, 0xdf000000)   # -2^63
  TEST_FP_TO_INT_S_RM(123, fcvt.l.s, rne, NX, -2, 0xbfc00000)
  TEST_FP_TO_INT_S_RM(124, fcvt.l.s, rtz, NV, 0x7fffffffffffffff, QNAN)
  TEST_FP_TO_INT_S_RM(125, fcvt.lu.s, rtz, 0, 0x8000000000000000, 0x5f000000)
  TEST_FP_TO_INT_S_RM(126, fcvt.lu.s, rtz, NV, 0xffffffffffffffff, 0x5f800000) # 2^64
  TEST_FP_TO_INT_S_RM(127, fcvt.lu.s, rtz, NV, 0, MONE)
  TEST_FP_TO_INT_S_RM(128, fcvt.lu.s, rup, NX, 1, 0x3f000000)                  # 0.5 up -> 1
  TEST_FP_TO_INT_S_RM(129, fcvt.lu.s, rtz, NV, 0, NINF)

  # ---- conversions from integer
  TEST_INT_TO_FP_S(130, fcvt.s.w, 0, MONE, -1)
  TEST_INT_TO_FP_S(131, fcvt.s.w, 0, ONE, 0xffffffff00000001)                  # only the low 32 bits count
  TEST_INT_TO_FP_S(132, fcvt.s.w, NX, 0x4f000000, 0x7fffffff)                  # 2^31-1 rounds to 2^31
  TEST_INT_TO_FP_S_RM(133, fcvt.s.w, rtz, NX, 0x4effffff, 0x7fffffff)
  TEST_INT_TO_FP_S_RM(134, fcvt.s.w, rne, NX, 0x4b800000, 16777217)            # 2^24+1: tie to even 2^24
  TEST_INT_TO_FP_S_RM(135, fcvt.s.w, rup, NX, 0x4b800001, 16777217)
  TEST_INT_TO_FP_S_RM(136, fcvt.s.w, rmm, NX, 0x4b800001, 16777217)
  TEST_INT_TO_FP_S(137, fcvt.s.wu, NX, 0x4f800000, 0xffffffff)                 # 2^32-1 -> 2^32
  TEST_INT_TO_FP_S_RM(138, fcvt.s.wu, rtz, NX, 0x4f7fffff, 0xffffffff)
  TEST_INT_TO_FP_S(139, fcvt.s.l, 0, MONE, -1)
  TEST_INT_TO_FP_S(140, fcvt.s.l, NX, 0x5f000000, 0x7fffffffffffffff)
  TEST_INT_TO_FP_S_RM(141, fcvt.s.l, rdn, NX, 0xdf000000, 0x8000000000000001) # -(2^63-1) down -> -2^63
  TEST_INT_TO_FP_S(142, fcvt.s.lu, NX, 0x5f800000, 0xffffffffffffffff)
  TEST_INT_TO_FP_S_RM(143, fcvt.s.lu, rdn, NX, 0x5f7fffff, 0xffffffffffffffff)
  TEST_INT_TO_FP_S(144, fcvt.s.lu, 0, 0x00000000, 0)

  # ---- moves: fmv.x.w sign-extends; fmv.w.x NaN-boxes the low 32 bits
  TEST_FP_TO_INT_S(150, fmv.x.w, 0, 0xffffffff80000000, 0x80000000)
  TEST_FP_TO_INT_S(151, fmv.x.w, 0, 0x000000007f800001, SNAN)                  # no canonicalisation
  TEST_INT_TO_FP_S(152, fmv.w.x, 0, 0x3f800000, 0x123456783f800000)

  # ---- compares: feq is quiet, flt/fle signal on any NaN
  TEST_FP_CMP_S(155, feq.s, 0, 1, ONE, ONE)
  TEST_FP_CMP_S(156, feq.s, 0, 1, 0x80000000, 0x00000000)                      # -0 == +0
  TEST_FP_CMP_S(157, feq.s, 0, 0, QNAN, ONE)
  TEST_FP_CMP_S(158, feq.s, NV, 0, SNAN, ONE)
  TEST_FP_CMP_S(159, flt.s, 0, 1, MONE, ONE)
  TEST_FP_CMP_S(160, flt.s, 0, 0, 0x80000000, 0x00000000)
  TEST_FP_CMP_S(161, flt.s, NV, 0, QNAN, ONE)
  TEST_FP_CMP_S(162, fle.s, 0, 1, 0x80000000, 0x00000000)
  TEST_FP_CMP_S(163, fle.s, 0, 0, 0x40000000, ONE)
  TEST_FP_CMP_S(164, fle.s, NV, 0, ONE, QNAN)

  # ---- fclass.s: one bit per class
  TEST_FP_TO_INT_S(170, fclass.s, 0, 0x001, NINF)
  TEST_FP_TO_INT_S(171, fclass.s, 0, 0x002, MONE)
  TEST_FP_TO_INT_S(172, fclass.s, 0, 0x004, 0x807fffff)
  TEST_FP_TO_INT_S(173, fclass.s, 0, 0x008, 0x80000000)
  TEST_FP_TO_INT_S(174, fclass.s, 0, 0x010, 0x00000000)
  TEST_FP_TO_INT_S(175, fclass.s, 0, 0x020, 0x00000001)
  TEST_FP_TO_INT_S(176, fclass.s, 0, 0x040, ONE)
  TEST_FP_TO_INT_S(177, fclass.s, 0, 0x080, INF)
  TEST_FP_TO_INT_S(178, fclass.s, 0, 0x100, SNAN)
  TEST_FP_TO_INT_S(179, fclass.s, 0, 0x200, QNAN)

  # ---- flw/fsw: flw NaN-boxes; fsw stores exactly 4 bytes
  TEST_CASE(180, a0, 0xffffffff40490fdb, la a1, fdata; flw fa4, 0(a1); fmv.x.d a0, fa4)
  TEST_CASE(181, a0, 0x123456783f800000, la a1, fdata; LOAD_S(fa4, ONE); fsw fa4, 0(a1); ld a0, 0(a1))
  TEST_CASE(182, a0, 0x40490fdb40490fdb, li t0, 0x40490fdb; sw t0, 0(a1); flw fa4, 0(a1); fsw fa4, 4(a1); ld a0, 0(a1))

  # ---- NaN-boxing of inputs: a value whose upper 32 bits are not all ones
  #      reads as the canonical NaN for arithmetic, but not for moves/stores.
  li TESTNUM, 185; LOAD_D(fa0, 0x000000003f800000); LOAD_S(fa1, ONE); CLEAR_FLAGS
  fadd.s fa3, fa0, fa1; CHECK_FLAGS(0); CHECK_FS(fa3, QNAN)
  li TESTNUM, 186; fsgnj.s fa3, fa0, fa0; CHECK_FS(fa3, QNAN)
  li TESTNUM, 187; fclass.s a0, fa0; CHECK_REG(a0, 0x200)
  li TESTNUM, 188; fmv.x.w a0, fa0; CHECK_REG(a0, 0x3f800000)
  li TESTNUM, 189; la a1, fdata; fsw fa0, 0(a1); lwu a0, 0(a1); CHECK_REG(a0, 0x3f800000)
  li TESTNUM, 190; LOAD_D(fa0, 0xfffffffe3f800000); feq.s a0, fa0, fa0; CHECK_REG(a0, 0)

  # ---- fcsr, frm and fflags
  TEST_CASE(191, a0, 0xff, csrwi fcsr, 0; li a1, 0xfff; csrw fcsr, a1; csrr a0, fcsr)     # only 8 bits exist
  TEST_CASE(192, a0, 0x7, csrr a0, frm)
  TEST_CASE(193, a0, 0x1f, csrr a0, fflags)
  TEST_CASE(194, a0, 0x3f, csrwi frm, 1; csrr a0, fcsr)                               # frm = bits 7:5
  TEST_CASE(195, a0, 0x2a, csrwi fflags, 0xa; csrr a0, fcsr)
  # Flags accumulate: NX from 1/3, then DZ from 1/0.
  TEST_CASE(196, a0, NX|DZ, csrwi fcsr, 0; LOAD_S(fa0, ONE); LOAD_S(fa1, 0x40400000); fdiv.s fa2, fa0, fa1; fmv.w.x fa1, zero; fdiv.s fa2, fa0, fa1; csrr a0, fflags)
  # Dynamic rounding follows frm: 1/3 with RTZ (1), RUP (3); -1/3 with RDN (2); RMM (4).
  TEST_CASE(197, a0, 0xffffffff3eaaaaaa, csrwi frm, 1; LOAD_S(fa0, ONE); LOAD_S(fa1, 0x40400000); fdiv.s fa2, fa0, fa1, dyn; fmv.x.d a0, fa2)
  TEST_CASE(198, a0, 0xffffffff3eaaaaab, csrwi frm, 3; fdiv.s fa2, fa0, fa1, dyn; fmv.x.d a0, fa2)
  TEST_CASE(199, a0, 0xffffffffbeaaaaab, csrwi frm, 2; LOAD_S(fa0, MONE); fdiv.s fa2, fa0, fa1, dyn; fmv.x.d a0, fa2)
  TEST_CASE(184, a0, 3, csrwi frm, 4; LOAD_S(fa0, 0x40200000); fcvt.w.s a0, fa0, dyn)   # 2.5 RMM -> 3
  csrwi fcsr, 0
  TEST_PASS
