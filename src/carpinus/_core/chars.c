/*
 * chars.c -- the byte class table of chars.h.
 */
#include "chars.h"

#define __ 0
#define WS CC_VALUE
#define VI (CC_VALUE | CC_TARGET)
#define VH (CC_VALUE | CC_TARGET | CC_HOST)
#define TK (CC_TOKEN | CC_VALUE | CC_TARGET)
#define TH (CC_TOKEN | CC_VALUE | CC_TARGET | CC_HOST)
#define HX (CC_TOKEN | CC_VALUE | CC_TARGET | CC_HOST | CC_HEX)

/* clang-format off */
const unsigned char cp_char_class[256] = {
    __, __, __, __, __, __, __, __, __, WS, __, __, __, __, __, __, /* 0_ */
    __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, __, /* 1_ */
    WS, TH, VI, TK, TH, TH, TH, TH, VH, VH, TH, TH, VH, TH, TH, VI, /* 2_ */
    HX, HX, HX, HX, HX, HX, HX, HX, HX, HX, VH, VH, VI, VH, VI, VI, /* 3_ */
    VI, HX, HX, HX, HX, HX, HX, TH, TH, TH, TH, TH, TH, TH, TH, TH, /* 4_ */
    TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, VH, VI, VH, TK, TH, /* 5_ */
    TK, HX, HX, HX, HX, HX, HX, TH, TH, TH, TH, TH, TH, TH, TH, TH, /* 6_ */
    TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, TH, VI, TK, VI, TH, __, /* 7_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* 8_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* 9_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* A_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* B_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* C_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* D_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* E_ */
    VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, VI, /* F_ */
};
/* clang-format on */
