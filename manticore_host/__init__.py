"""Host-side tooling for the manticore MicroPython parakernel."""
