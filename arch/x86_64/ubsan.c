// A minimal runtime for the Undefined Behavior Sanitizer (`invoke build --sanitize` builds
// the kernel with -fsanitize=undefined; this file itself is built without it, see the
// Makefile). The compiler calls one __ubsan_handle_* function when a check fails; each prints
// one "UBSan: ..." line naming the check and the source location on COM1 and panics, so the
// report, a symbolized backtrace and QEMU's panic exit status follow. The data layouts are
// the ABI of GCC's and Clang's sanitizer runtime (compiler-rt ubsan_handlers.h). In the
// ordinary build nothing calls these.
#include <stdint.h>

#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/panic.h"

struct ubsan_location {
    const char *file;
    uint32_t line;
    uint32_t column;
};

struct ubsan_type {
    uint16_t kind;      // 0 integer, 1 float
    uint16_t info;      // integer: bit 0 signed, bits 15-1 log2(bit width)
    char name[];
};

struct ubsan_loc_only { struct ubsan_location loc; };
struct ubsan_overflow { struct ubsan_location loc; const struct ubsan_type *type; };
struct ubsan_shift {
    struct ubsan_location loc;
    const struct ubsan_type *lhs_type, *rhs_type;
};
struct ubsan_out_of_bounds {
    struct ubsan_location loc;
    const struct ubsan_type *array_type, *index_type;
};
struct ubsan_type_mismatch {
    struct ubsan_location loc;
    const struct ubsan_type *type;
    uint8_t log_alignment;
    uint8_t type_check_kind;
};
struct ubsan_nonnull_arg {
    struct ubsan_location loc, attr_loc;
    int arg_index;
};
struct ubsan_invalid_builtin { struct ubsan_location loc; uint8_t kind; };

static const char *const type_check_kinds[] = {
    "load of", "store to", "reference binding to", "member access within",
    "member call on", "constructor call on", "downcast of", "downcast of",
    "upcast of", "cast to virtual base of", "_Nonnull binding to", "dynamic operation on",
};

__attribute__((noreturn)) static void report(const char *what, const struct ubsan_location *loc) {
    kprintf("UBSan: %s at %s:%u:%u\n", what, loc->file ? loc->file : "?", loc->line, loc->column);
    panic("undefined behaviour (UBSan): %s at %s:%u:%u", what, loc->file ? loc->file : "?",
          loc->line, loc->column);
}

__attribute__((noreturn)) static void report_value(const char *what, const struct ubsan_location *loc,
                                                   const struct ubsan_type *type, uintptr_t a,
                                                   uintptr_t b) {
    kprintf("UBSan: %s (type %s, operands 0x%lx, 0x%lx)\n", what, type ? type->name : "?",
            (unsigned long)a, (unsigned long)b);
    report(what, loc);
}

#define UBSAN_NORETURN __attribute__((noreturn))

UBSAN_NORETURN void __ubsan_handle_add_overflow(struct ubsan_overflow *d, uintptr_t a, uintptr_t b) {
    report_value("integer overflow in +", &d->loc, d->type, a, b);
}
UBSAN_NORETURN void __ubsan_handle_sub_overflow(struct ubsan_overflow *d, uintptr_t a, uintptr_t b) {
    report_value("integer overflow in -", &d->loc, d->type, a, b);
}
UBSAN_NORETURN void __ubsan_handle_mul_overflow(struct ubsan_overflow *d, uintptr_t a, uintptr_t b) {
    report_value("integer overflow in *", &d->loc, d->type, a, b);
}
UBSAN_NORETURN void __ubsan_handle_negate_overflow(struct ubsan_overflow *d, uintptr_t a) {
    report_value("integer overflow in unary -", &d->loc, d->type, a, 0);
}
UBSAN_NORETURN void __ubsan_handle_divrem_overflow(struct ubsan_overflow *d, uintptr_t a, uintptr_t b) {
    report_value("division overflow or by zero", &d->loc, d->type, a, b);
}
UBSAN_NORETURN void __ubsan_handle_shift_out_of_bounds(struct ubsan_shift *d, uintptr_t a, uintptr_t b) {
    report_value("shift out of bounds", &d->loc, d->lhs_type, a, b);
}
UBSAN_NORETURN void __ubsan_handle_out_of_bounds(struct ubsan_out_of_bounds *d, uintptr_t index) {
    report_value("array index out of bounds", &d->loc, d->array_type, index, 0);
}
UBSAN_NORETURN void __ubsan_handle_load_invalid_value(struct ubsan_overflow *d, uintptr_t value) {
    report_value("load of a value invalid for its type", &d->loc, d->type, value, 0);
}
UBSAN_NORETURN void __ubsan_handle_vla_bound_not_positive(struct ubsan_overflow *d, uintptr_t bound) {
    report_value("variable-length array bound not positive", &d->loc, d->type, bound, 0);
}
UBSAN_NORETURN void __ubsan_handle_float_cast_overflow(struct ubsan_overflow *d, uintptr_t from) {
    report_value("float to integer conversion overflow", &d->loc, d->type, from, 0);
}
UBSAN_NORETURN void __ubsan_handle_builtin_unreachable(struct ubsan_loc_only *d) {
    report("__builtin_unreachable() reached", &d->loc);
}
UBSAN_NORETURN void __ubsan_handle_missing_return(struct ubsan_loc_only *d) {
    report("end of a value-returning function reached without return", &d->loc);
}
UBSAN_NORETURN void __ubsan_handle_pointer_overflow(struct ubsan_loc_only *d, uintptr_t base,
                                                    uintptr_t result) {
    kprintf("UBSan: pointer arithmetic 0x%lx -> 0x%lx wrapped\n", (unsigned long)base,
            (unsigned long)result);
    report("pointer overflow", &d->loc);
}
UBSAN_NORETURN void __ubsan_handle_nonnull_arg(struct ubsan_nonnull_arg *d) {
    kprintf("UBSan: null passed as argument %d, declared nonnull\n", d->arg_index);
    report("null argument", &d->loc);
}
UBSAN_NORETURN void __ubsan_handle_nonnull_return_v1(struct ubsan_loc_only *d,
                                                     struct ubsan_location *loc) {
    (void)d;
    report("null returned from a function declared returns_nonnull", loc);
}
UBSAN_NORETURN void __ubsan_handle_invalid_builtin(struct ubsan_invalid_builtin *d) {
    report("invalid argument to a builtin (ctz/clz of 0)", &d->loc);
}
UBSAN_NORETURN void __ubsan_handle_type_mismatch_v1(struct ubsan_type_mismatch *d, uintptr_t ptr) {
    const char *kind = d->type_check_kind < sizeof(type_check_kinds) / sizeof(type_check_kinds[0])
                       ? type_check_kinds[d->type_check_kind] : "access to";
    if (ptr == 0) {
        kprintf("UBSan: %s null pointer of type %s\n", kind, d->type ? d->type->name : "?");
        report("null pointer access", &d->loc);
    }
    kprintf("UBSan: %s misaligned address 0x%lx for type %s (needs %u-byte alignment)\n", kind,
            (unsigned long)ptr, d->type ? d->type->name : "?", 1u << d->log_alignment);
    report("misaligned or too-small object access", &d->loc);
}
