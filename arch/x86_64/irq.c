// The kernel's interrupt vectors above the CPU exceptions: an allocator for vectors
// 0x30..0xEF, a table of handlers with names, and routing of legacy ISA IRQs and GSIs through
// the I/O APIC. It sits on idt.c's interrupt_register and sends the EOI after the handlers.
//
// Legacy IRQ n arrives on GSI n unless the MADT has an Interrupt Source Override for it
// (ACPI 6.5, 5.2.12.5); ISA interrupts are edge-triggered and active high unless the
// override's MPS INTI flags say otherwise (Table 5.26). Vector priority classes are the
// upper four bits (Intel SDM Vol. 3A 10.8.3.1); 0x30..0xEF leaves 0x20-0x2F to the (masked)
// 8259 and 0xF0-0xFF to the APIC's own needs (0xFF spurious).
#include "arch/x86_64/irq.h"

#include <stddef.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/pic.h"

enum {
    IRQ_SHARED_MAX = 4,          // handlers on one vector (shared level-triggered INTx lines)
    IRQ_NO_GSI = 0xffffffffu,
    ISA_IRQ_COUNT = 16,
};

struct irq_action {
    void (*handler)(void *context);
    void *context;
    const char *name;
};

struct irq_slot {
    bool allocated;
    int pic_irq;                 // >= 0: delivered by the 8259 (fallback), EOI goes there
    uint32_t gsi;                // the I/O APIC pin feeding it, IRQ_NO_GSI if none
    int action_count;
    struct irq_action actions[IRQ_SHARED_MAX];
};

static struct irq_slot slots[INTERRUPT_VECTOR_COUNT];
static int legacy_vector[ISA_IRQ_COUNT] = { -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, -1, -1, -1, -1, -1, -1 };
static bool apic_routing;        // I/O APIC + local APIC deliver legacy IRQs

static void irq_entry(struct interrupt_frame *frame, void *context) {
    (void)frame;
    struct irq_slot *slot = context;
    for (int i = 0; i < slot->action_count; i++) {
        slot->actions[i].handler(slot->actions[i].context);
    }
    if (slot->pic_irq >= 0) {
        pic_eoi(slot->pic_irq);
    } else {
        lapic_eoi();
    }
}

void irq_init(void) {
    for (int v = 0; v < INTERRUPT_VECTOR_COUNT; v++) {
        slots[v].pic_irq = -1;
        slots[v].gsi = IRQ_NO_GSI;
    }
    apic_routing = lapic_enabled() && ioapic_count() > 0;
    if (apic_routing) {
        pic_disable();
    } else {
        lapic_route_extint();    // no-op without a local APIC: the 8259 drives INTR itself
    }
}

int irq_alloc_vector(void) {
    uint64_t flags = read_rflags();
    cli();
    int found = -1;
    for (int v = IRQ_VECTOR_FIRST; v <= IRQ_VECTOR_LAST; v++) {
        if (!slots[v].allocated) {
            slots[v].allocated = true;
            slots[v].action_count = 0;
            slots[v].pic_irq = -1;
            slots[v].gsi = IRQ_NO_GSI;
            found = v;
            break;
        }
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
    return found;
}

void irq_free_vector(int vector) {
    if (vector < FIRST_EXTERNAL_VECTOR || vector >= INTERRUPT_VECTOR_COUNT) {
        return;
    }
    uint64_t flags = read_rflags();
    cli();
    struct irq_slot *slot = &slots[vector];
    if (slot->gsi != IRQ_NO_GSI) {
        ioapic_mask(slot->gsi);
    }
    if (slot->pic_irq >= 0) {
        pic_mask(slot->pic_irq);
    }
    for (int i = 0; i < ISA_IRQ_COUNT; i++) {
        if (legacy_vector[i] == vector) {
            legacy_vector[i] = -1;
        }
    }
    interrupt_unregister(vector);
    *slot = (struct irq_slot){ .pic_irq = -1, .gsi = IRQ_NO_GSI };
    if (flags & RFLAGS_IF) {
        sti();
    }
}

int irq_install(int vector, void (*handler)(void *context), void *context, const char *name) {
    if (vector < FIRST_EXTERNAL_VECTOR || vector >= LAPIC_SPURIOUS_VECTOR || handler == NULL) {
        return -1;
    }
    uint64_t flags = read_rflags();
    cli();
    struct irq_slot *slot = &slots[vector];
    int result = -1;
    if (slot->action_count < IRQ_SHARED_MAX) {
        slot->actions[slot->action_count++] = (struct irq_action){ handler, context, name };
        slot->allocated = true;
        result = interrupt_register(vector, irq_entry, slot);
        if (result != 0) {
            slot->action_count--;
        }
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
    return result;
}

uint64_t irq_count(int vector) {
    return vector >= 0 && vector < INTERRUPT_VECTOR_COUNT ? interrupt_count[vector] : 0;
}

const char *irq_name(int vector) {
    if (vector < 0 || vector >= INTERRUPT_VECTOR_COUNT || slots[vector].action_count == 0) {
        return NULL;
    }
    return slots[vector].actions[0].name;
}

uint32_t irq_legacy_gsi(unsigned isa_irq) {
    for (int i = 0; i < acpi_info.override_count; i++) {
        if (acpi_info.overrides[i].source_irq == isa_irq) {
            return acpi_info.overrides[i].gsi;
        }
    }
    return isa_irq;
}

static uint16_t legacy_flags(unsigned isa_irq) {
    for (int i = 0; i < acpi_info.override_count; i++) {
        if (acpi_info.overrides[i].source_irq == isa_irq) {
            return acpi_info.overrides[i].flags;
        }
    }
    return 0;   // conforms to the bus: ISA is edge-triggered, active high
}

int irq_legacy_vector(unsigned isa_irq) {
    return isa_irq < ISA_IRQ_COUNT ? legacy_vector[isa_irq] : -1;
}

// A GSI already routed to a vector (PCI INTx lines are shared), or -1.
static int vector_for_gsi(uint32_t gsi) {
    for (int v = IRQ_VECTOR_FIRST; v <= IRQ_VECTOR_LAST; v++) {
        if (slots[v].allocated && slots[v].gsi == gsi) {
            return v;
        }
    }
    return -1;
}

int irq_route_gsi(uint32_t gsi, bool level, bool active_low, void (*handler)(void *), void *ctx,
                  const char *name) {
    if (!apic_routing) {
        return -1;
    }
    int vector = vector_for_gsi(gsi);
    if (vector >= 0) {
        return irq_install(vector, handler, ctx, name) == 0 ? vector : -1;
    }
    vector = irq_alloc_vector();
    if (vector < 0) {
        return -1;
    }
    if (irq_install(vector, handler, ctx, name) != 0
        || ioapic_route(gsi, vector, lapic_id(), level, active_low, true) != 0) {
        irq_free_vector(vector);
        return -1;
    }
    slots[vector].gsi = gsi;
    ioapic_unmask(gsi);
    return vector;
}

// Without an I/O APIC the 8259 delivers IRQ n on vector 0x20 + n (pic.c), through LINT0.
static int route_legacy_pic(unsigned isa_irq, void (*handler)(void *), void *ctx,
                            const char *name) {
    int vector = PIC_VECTOR_BASE + isa_irq;
    if (irq_install(vector, handler, ctx, name) != 0) {
        return -1;
    }
    slots[vector].pic_irq = isa_irq;
    pic_unmask(isa_irq);
    return vector;
}

int irq_route_legacy(unsigned isa_irq, void (*handler)(void *context), void *context,
                     const char *name) {
    if (isa_irq >= ISA_IRQ_COUNT) {
        return -1;
    }
    int vector;
    if (apic_routing) {
        uint16_t flags = legacy_flags(isa_irq);
        bool level = (flags & ACPI_INTI_TRIGGER_MASK) == ACPI_INTI_TRIGGER_LEVEL;
        bool active_low = (flags & ACPI_INTI_POLARITY_MASK) == ACPI_INTI_POLARITY_ACTIVE_LOW;
        vector = irq_route_gsi(irq_legacy_gsi(isa_irq), level, active_low, handler, context, name);
    } else {
        vector = route_legacy_pic(isa_irq, handler, context, name);
    }
    if (vector >= 0) {
        legacy_vector[isa_irq] = vector;
    }
    return vector;
}

void irq_mask_gsi(uint32_t gsi) {
    if (apic_routing) {
        ioapic_mask(gsi);
    } else {
        pic_mask(gsi);
    }
}

void irq_unmask_gsi(uint32_t gsi) {
    if (apic_routing) {
        ioapic_unmask(gsi);
    } else {
        pic_unmask(gsi);
    }
}

bool irq_apic_routing(void) {
    return apic_routing;
}

int irq_set_legacy_destination(unsigned isa_irq, uint32_t apic_id) {
    if (!apic_routing || isa_irq >= ISA_IRQ_COUNT || legacy_vector[isa_irq] < 0) {
        return -1;
    }
    uint16_t flags = legacy_flags(isa_irq);
    bool level = (flags & ACPI_INTI_TRIGGER_MASK) == ACPI_INTI_TRIGGER_LEVEL;
    bool active_low = (flags & ACPI_INTI_POLARITY_MASK) == ACPI_INTI_POLARITY_ACTIVE_LOW;
    uint32_t gsi = irq_legacy_gsi(isa_irq);
    // Rewriting the whole redirection entry (82093AA datasheet 3.2.4) while the pin is
    // unmasked is safe: the I/O APIC latches the entry when it sends a message.
    if (ioapic_route(gsi, (uint8_t)legacy_vector[isa_irq], apic_id, level, active_low, false) != 0) {
        return -1;
    }
    return 0;
}
