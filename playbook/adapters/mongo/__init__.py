"""MongoDB: the diagnostics' reader, its read-only check, the guarded actions' writer, and
the in-process stand-in drills use.

Nothing is imported here, so that naming a module of this package does not load pymongo.
"""
