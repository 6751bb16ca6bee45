// The port's <math.h>: shadows the host C library's header, whose inline and internal
// declarations (__sin, __cos, ...) clash with MicroPython's lib/libm_dbl, which is the
// libm this kernel links.
#ifndef MANTICORE_MATH_H
#define MANTICORE_MATH_H

// lib/libm_dbl requires FLT_EVAL_METHOD == 0, which SSE arithmetic gives.
typedef float float_t;
typedef double double_t;

#define NAN (__builtin_nan(""))
#define INFINITY (__builtin_inf())
#define HUGE_VAL (__builtin_huge_val())
#define M_PI (3.14159265358979323846)
#define M_E (2.7182818284590452354)
#define FP_NAN (0)
#define FP_INFINITE (1)
#define FP_ZERO (2)
#define FP_SUBNORMAL (3)
#define FP_NORMAL (4)

int __fpclassifyd(double x);
int __fpclassifyf(float x);
int __signbitd(double x);
int __signbitf(float x);

#define fpclassify(x) (sizeof(x) == sizeof(float) ? __fpclassifyf(x) : __fpclassifyd(x))
#define signbit(x) (__builtin_signbit(x))
#define isnan(x) (__builtin_isnan(x))
#define isinf(x) (__builtin_isinf(x))
#define isfinite(x) (__builtin_isfinite(x))
#define isnormal(x) (__builtin_isnormal(x))

double acos(double x);
double acosh(double x);
double asin(double x);
double asinh(double x);
double atan(double x);
double atan2(double y, double x);
double atanh(double x);
double ceil(double x);
double copysign(double x, double y);
double cos(double x);
double cosh(double x);
double erf(double x);
double erfc(double x);
double exp(double x);
double expm1(double x);
double fabs(double x);
double floor(double x);
double fmod(double x, double y);
double frexp(double x, int *exp);
double ldexp(double x, int exp);
double lgamma(double x);
double log(double x);
double log10(double x);
double log1p(double x);
double log2(double x);
double modf(double x, double *iptr);
double nan(const char *tag);
double nearbyint(double x);
double pow(double x, double y);
double rint(double x);
double round(double x);
double scalbn(double x, int n);
double sin(double x);
double sinh(double x);
double sqrt(double x);
double tan(double x);
double tanh(double x);
double tgamma(double x);
double trunc(double x);
void sincos(double x, double *s, double *c);

float fabsf(float x);
float sqrtf(float x);
float floorf(float x);
float ceilf(float x);
float truncf(float x);
float nanf(const char *tag);

#endif // MANTICORE_MATH_H
