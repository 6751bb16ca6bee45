# Manticore's apps: one module each with a main() entry, frozen into the image and started
# by the boot script from the kernel command line (app=NAME).
