"""Shell diagnostics: a program run from an argument list inside the kernel's sandbox
(Landlock and seccomp), under a supervisor process that ends its whole tree at the deadline.
"""
