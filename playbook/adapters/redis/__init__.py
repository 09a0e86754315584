"""Redis: the diagnostics' reader, the guarded actions' writer, and what they share.

Nothing is imported here, so that importing one module of this package does not load
the others.
"""
