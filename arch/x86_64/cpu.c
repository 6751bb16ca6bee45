// Out-of-line helpers for the processor identification CPUID provides.
#include "arch/x86_64/cpu.h"

void cpu_brand_string(char out[49]) {
    // Leaves 0x80000002-0x80000004 return 16 bytes each of the brand string in EAX, EBX,
    // ECX, EDX order (SDM Vol. 2A, CPUID, "Processor Brand String").
    if (cpuid(0x80000000, 0).eax < 0x80000004) {
        const char *unknown = "unknown x86-64 CPU";
        int i = 0;
        for (; unknown[i]; i++) {
            out[i] = unknown[i];
        }
        out[i] = '\0';
        return;
    }
    char raw[48];
    for (uint32_t leaf = 0; leaf < 3; leaf++) {
        struct cpuid_result r = cpuid(0x80000002 + leaf, 0);
        uint32_t words[4] = { r.eax, r.ebx, r.ecx, r.edx };
        for (int w = 0; w < 4; w++) {
            for (int b = 0; b < 4; b++) {
                raw[leaf * 16 + w * 4 + b] = (char)(words[w] >> (8 * b));
            }
        }
    }
    int start = 0, end = 48;
    while (end > 0 && (raw[end - 1] == '\0' || raw[end - 1] == ' ')) {
        end--;
    }
    while (start < end && raw[start] == ' ') {
        start++;
    }
    int length = 0;
    for (int i = start; i < end && raw[i] != '\0'; i++) {
        out[length++] = raw[i];
    }
    out[length] = '\0';
}
