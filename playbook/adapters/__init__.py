"""Back ends: what reads (diagnostics) and writes (guarded actions) a real system.

``base.py`` is the adapter contract, ``writers.py`` the writer contract, ``plugins.py``
finds both through entry points and assembles the playbook model from what the adapters
say a diagnostic or action of their kind holds. One package per back end (``redis/``,
``mongo/``, ``postgres/``, ``http/``, ``shell/``), each with its ``models`` (what a playbook
may write), its reader and, where the back end can be changed, its writer.
"""
