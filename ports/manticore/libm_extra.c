// Math functions lib/libm_dbl leaves to the platform: square root in hardware (SSE2 SQRTSD is
// correctly rounded, IEEE 754), fabs, copysign, nan and sincos (GCC turns a sin/cos pair into a
// sincos call). Built with -fno-builtin so that GCC does not turn sincos back into itself.
#include <math.h>

double sqrt(double x) {
    double result;
    __asm__ ("sqrtsd %1, %0" : "=x" (result) : "x" (x));
    return result;
}

float sqrtf(float x) {
    float result;
    __asm__ ("sqrtss %1, %0" : "=x" (result) : "x" (x));
    return result;
}

double fabs(double x) {
    return __builtin_fabs(x);
}

float fabsf(float x) {
    return __builtin_fabsf(x);
}

void sincos(double x, double *s, double *c) {
    *s = sin(x);
    *c = cos(x);
}

// lib/libm_dbl leaves copysign out of NDEBUG builds, expecting the compiler's builtin.
double copysign(double x, double y) {
    return __builtin_copysign(x, y);
}

double nan(const char *tag) {
    (void)tag;
    return __builtin_nan("");
}
