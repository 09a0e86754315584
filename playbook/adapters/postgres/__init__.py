"""PostgreSQL: the diagnostics' reader, the parser and catalog checks that keep it to one
read, and the guarded actions' writer.

Nothing is imported here, so that naming a module of this package does not load psycopg.
"""
