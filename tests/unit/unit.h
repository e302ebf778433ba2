/* unit.h - what every cmocka unit test includes first (cmocka needs these). */
#ifndef POSTERN_UNIT_H
#define POSTERN_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
