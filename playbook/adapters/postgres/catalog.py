"""The SQL :mod:`playbook.adapters.postgres.calls` sends to a diagnostic's server, kept
apart so that the logic around it reads in one screen.

Every function, operator and type here is written with its schema
(``OPERATOR(pg_catalog.=)`` too): a database owner can put a better-matching
``array_remove`` or ``=`` in a schema the session's search path puts first
(``ALTER DATABASE … SET search_path``), and the server would call it. A test reads these
queries with the parser that reads diagnostics, and fails on any name without
``pg_catalog``; none uses ``IN``, ``BETWEEN``, ``IS DISTINCT FROM`` or ``JOIN … USING``,
which stand for an operator found by name.
"""

ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolreplication,
       pg_catalog.array_remove(ARRAY[{members}], NULL::pg_catalog.text) AS memberships
FROM pg_catalog.pg_roles r
WHERE r.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[SESSION_USER, CURRENT_USER])
"""
"""The login and current role, and which server-file roles each is a member of
(``{members}``: one ``CASE`` per role, filled in by ``check_role``)."""

CALLS_SQL = """
WITH RECURSIVE
system(nsp) AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname OPERATOR(pg_catalog.=)
          ANY ('{pg_catalog,information_schema}'::pg_catalog.name[])
),
path(nsp) AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(true))
),
fcall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(f_schema)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(f_name)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(f_attr)s::pg_catalog.bool[]),
                                   pg_catalog.unnest(%(f_ctx)s::pg_catalog.text[]))
          AS f(sch, name, attr, ctx)),
ocall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(o_schema)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(o_name)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(o_ctx)s::pg_catalog.text[]))
          AS o(sch, name, ctx)),
-- every function of a name written: all of them must pass, whichever the server picks
fns(via, fn) AS (
    SELECT 'the function ' OPERATOR(pg_catalog.||) f.name OPERATOR(pg_catalog.||) f.ctx, p.oid
    FROM fcall f JOIN pg_catalog.pg_proc p ON p.proname OPERATOR(pg_catalog.=) f.name
    WHERE CASE WHEN f.sch IS NULL
               THEN p.pronamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM path)
               WHEN f.sch OPERATOR(pg_catalog.=) 'pg_temp'
               THEN p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
               ELSE p.pronamespace OPERATOR(pg_catalog.=)
                    pg_catalog.to_regnamespace(f.sch)::pg_catalog.oid END
      AND (NOT f.attr OR (p.pronargs OPERATOR(pg_catalog.>=) 1 AND EXISTS (
             SELECT FROM pg_catalog.pg_type t
             WHERE t.oid OPERATOR(pg_catalog.=) p.proargtypes[0]
               AND t.typtype OPERATOR(pg_catalog.=) ANY ('{c,p,d}'::pg_catalog."char"[]))))
),
ops(oid, via) AS (
    SELECT op.oid, 'the operator ' OPERATOR(pg_catalog.||) o.name OPERATOR(pg_catalog.||) o.ctx
    FROM ocall o JOIN pg_catalog.pg_operator op ON op.oprname OPERATOR(pg_catalog.=) o.name
    WHERE CASE WHEN o.sch IS NULL
               THEN op.oprnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM path)
               WHEN o.sch OPERATOR(pg_catalog.=) 'pg_temp'
               THEN op.oprnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
               ELSE op.oprnamespace OPERATOR(pg_catalog.=)
                    pg_catalog.to_regnamespace(o.sch)::pg_catalog.oid END
),
named(via, fn) AS (
    SELECT via, fn FROM fns
  UNION ALL
    SELECT o.via, op.oprcode::pg_catalog.oid
    FROM ops o JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) o.oid
    WHERE op.oprcode::pg_catalog.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
-- relations read: those named, what their views' queries and policies read (pg_depend
-- records every object a stored query uses that is not built in), and their children
rels(oid) AS (
    SELECT c.oid FROM pg_catalog.unnest(%(rels)s::pg_catalog.text[]) AS r(name)
    JOIN pg_catalog.pg_class c
      ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(r.name)::pg_catalog.oid
  UNION
    SELECT e.oid FROM rels CROSS JOIN LATERAL (
        SELECT d.refobjid AS oid
        FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) w.oid
        WHERE w.ev_class OPERATOR(pg_catalog.=) rels.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      UNION ALL
        SELECT d.refobjid
        FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) p.oid
        WHERE p.polrelid OPERATOR(pg_catalog.=) rels.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      UNION ALL
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        WHERE i.inhparent OPERATOR(pg_catalog.=) rels.oid
    ) AS e
),
-- code stored on those relations: each view's query, each row security policy
held(key, via, classid, objid, kind, body, sch, name, what) AS (
    SELECT 'v' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text,
           'the view ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid, w.oid,
           'query', pg_catalog.pg_get_viewdef(c.oid), n.nspname, c.relname, 'the view'
    FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) c.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) 'v'::pg_catalog."char"
      AND w.ev_type OPERATOR(pg_catalog.=) '1'::pg_catalog."char"
      AND NOT c.relnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
  UNION ALL
    SELECT 'p' OPERATOR(pg_catalog.||) p.oid::pg_catalog.text,
           'a row security policy on '
             OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           'pg_catalog.pg_policy'::pg_catalog.regclass::pg_catalog.oid, p.oid,
           'expr', pg_catalog.pg_get_expr(p.polqual, p.polrelid), n.nspname, c.relname,
           'row security on the table'
    FROM rels JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.polrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE p.polqual IS NOT NULL
  UNION ALL
    SELECT 'f' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text,
           'the foreign table ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           0::pg_catalog.oid, 0::pg_catalog.oid, NULL, NULL, n.nspname, c.relname,
           'the foreign table'
    FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) 'f'::pg_catalog."char"
),
-- every type a value in the statement can have or be coerced to: types named, the
-- relations' row types, what the functions and operators named take and give, what
-- stored code uses; then down domains, arrays, ranges and composites' fields
types(oid) AS (
    SELECT pg_catalog.to_regtype(t)::pg_catalog.oid
    FROM pg_catalog.unnest(%(types)s::pg_catalog.text[]) AS t
    WHERE pg_catalog.to_regtype(t) IS NOT NULL
  UNION
    SELECT c.reltype FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
  UNION
    SELECT x.oid FROM named JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) named.fn
    CROSS JOIN LATERAL (
        SELECT p.prorettype AS oid
      UNION ALL SELECT pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])
      UNION ALL SELECT pg_catalog.unnest(p.proallargtypes)
    ) AS x
  UNION
    SELECT pg_catalog.unnest(ARRAY[op.oprleft, op.oprright, op.oprresult])
    FROM ops JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) ops.oid
  UNION
    SELECT d.refobjid FROM held h JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) h.classid AND d.objid OPERATOR(pg_catalog.=) h.objid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
  UNION
    SELECT e.oid
    FROM types JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) types.oid
    CROSS JOIN LATERAL (
        SELECT t.typbasetype AS oid WHERE t.typtype OPERATOR(pg_catalog.=) 'd'::pg_catalog."char"
      UNION ALL SELECT t.typelem
      UNION ALL SELECT t.typarray
        WHERE NOT t.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
      UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
        WHERE a.attrelid OPERATOR(pg_catalog.=) t.typrelid
          AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
      UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r
        WHERE r.rngtypid OPERATOR(pg_catalog.=) t.oid
      UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r
        WHERE r.rngmultitypid OPERATOR(pg_catalog.=) t.oid
      UNION ALL SELECT d.refobjid FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) k.oid
        WHERE k.contypid OPERATOR(pg_catalog.=) t.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
    ) AS e
    WHERE e.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
-- all code stored on what the statement reaches: the above, and each check of a domain
stored(key, via, classid, objid, kind, body, sch, name, what) AS (
    SELECT * FROM held
  UNION ALL
    SELECT 'c' OPERATOR(pg_catalog.||) k.oid::pg_catalog.text,
           'a check of the domain ' OPERATOR(pg_catalog.||) t.oid::pg_catalog.regtype::pg_catalog.text,
           'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, k.oid,
           'expr', pg_catalog.pg_get_expr(k.conbin, 0::pg_catalog.oid), n.nspname, t.typname,
           'the domain'
    FROM types JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) types.oid
    JOIN pg_catalog.pg_constraint k ON k.contypid OPERATOR(pg_catalog.=) t.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
    WHERE k.conbin IS NOT NULL
      AND NOT t.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
),
calls(via, fn) AS (
    SELECT via, fn FROM named
  UNION ALL
    -- a cast between two types a value can have: to a type reached, from one reached or
    -- built in (a literal, a parameter)
    SELECT 'a cast to ' OPERATOR(pg_catalog.||) c.casttarget::pg_catalog.regtype::pg_catalog.text,
           c.castfunc
    FROM pg_catalog.pg_cast c
    WHERE c.castfunc OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
      AND c.casttarget OPERATOR(pg_catalog.=) ANY (SELECT oid FROM types)
      AND (c.castsource OPERATOR(pg_catalog.=) ANY (SELECT oid FROM types)
           OR EXISTS (SELECT FROM pg_catalog.pg_type s
                      WHERE s.oid OPERATOR(pg_catalog.=) c.castsource
                        AND s.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)))
  UNION ALL
    -- functions stored code calls, however it was written (implicit casts included)
    SELECT s.via, d.refobjid FROM stored s JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) s.classid AND d.objid OPERATOR(pg_catalog.=) s.objid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
  UNION ALL
    SELECT s.via, op.oprcode::pg_catalog.oid FROM stored s JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) s.classid AND d.objid OPERATOR(pg_catalog.=) s.objid
    JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) d.refobjid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
      AND op.oprcode::pg_catalog.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
  UNION ALL
    SELECT 'the range type ' OPERATOR(pg_catalog.||) r.rngtypid::pg_catalog.regtype::pg_catalog.text,
           f.fn
    FROM types JOIN pg_catalog.pg_range r ON r.rngtypid OPERATOR(pg_catalog.=) types.oid
    CROSS JOIN LATERAL (VALUES (r.rngcanonical::pg_catalog.oid),
                               (r.rngsubdiff::pg_catalog.oid)) AS f(fn)
    WHERE f.fn OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
runners AS (
    SELECT pg_catalog.to_regprocedure(s)::pg_catalog.oid AS oid
    FROM pg_catalog.unnest(%(runners)s::pg_catalog.text[]) s
    WHERE pg_catalog.to_regprocedure(s) IS NOT NULL
),
inputs AS (  -- a type's input functions: record_in, domain_in… run any type's code
    SELECT t.typinput::pg_catalog.oid AS oid FROM pg_catalog.pg_type t
  UNION SELECT t.typreceive::pg_catalog.oid FROM pg_catalog.pg_type t
  UNION SELECT t.typmodin::pg_catalog.oid FROM pg_catalog.pg_type t
),
allowed AS (
    SELECT pg_catalog.to_regprocedure(s)::pg_catalog.oid AS oid
    FROM pg_catalog.unnest(%(allow)s::pg_catalog.text[]) s
    WHERE pg_catalog.to_regprocedure(s) IS NOT NULL
  UNION ALL
    SELECT p.oid FROM ROWS FROM (pg_catalog.unnest(%(opt_schema)s::pg_catalog.text[]),
                                 pg_catalog.unnest(%(opt_name)s::pg_catalog.text[])) AS o(sch, name)
    JOIN pg_catalog.pg_proc p
      ON p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace(o.sch)::pg_catalog.oid
     AND (o.name OPERATOR(pg_catalog.=) '*' OR p.proname OPERATOR(pg_catalog.=) o.name)
),
refused AS (
    SELECT DISTINCT c.via,
           pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname) OPERATOR(pg_catalog.||) '('
           OPERATOR(pg_catalog.||) pg_catalog.pg_get_function_identity_arguments(p.oid)
           OPERATOR(pg_catalog.||) ')' AS function,
           n.nspname AS schema, p.proname AS name,
           n.nspname OPERATOR(pg_catalog.=) 'pg_catalog' AS builtin, p.provolatile AS volatility,
           c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM runners) AS runs_queries,
           c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM inputs) AS type_input
    FROM calls c JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) c.fn
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
    WHERE NOT (n.nspname OPERATOR(pg_catalog.=) 'pg_catalog'
               AND p.provolatile OPERATOR(pg_catalog.=) ANY ('{i,s}'::pg_catalog."char"[])
               AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM runners)
               AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM inputs))
      AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM allowed)
),
untrusted AS (  -- stored code the responder must name: all of it on a privileged target
    SELECT DISTINCT s.what OPERATOR(pg_catalog.||) ' '
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.sch) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.name) AS label,
           s.sch AS schema, s.name AS name
    FROM stored s
    WHERE (%(privileged)s::pg_catalog.bool OR s.what OPERATOR(pg_catalog.=) 'the foreign table')
      AND NOT EXISTS (
          SELECT FROM ROWS FROM (pg_catalog.unnest(%(opt_schema)s::pg_catalog.text[]),
                                 pg_catalog.unnest(%(opt_name)s::pg_catalog.text[])) AS o(sch, name)
          WHERE o.sch OPERATOR(pg_catalog.=) s.sch::pg_catalog.text
            AND (o.name OPERATOR(pg_catalog.=) '*'
                 OR o.name OPERATOR(pg_catalog.=) s.name::pg_catalog.text))
)
SELECT pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on',
       (SELECT COALESCE(pg_catalog.json_agg(r ORDER BY r.via, r.function), '[]'::pg_catalog.json)
        FROM refused r),
       (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
                   'key', s.key, 'label', s.via, 'kind', s.kind,
                   'body', pg_catalog.left(s.body, %(longest)s::pg_catalog.int4 OPERATOR(pg_catalog.+) 1))
                   ORDER BY s.key), '[]'::pg_catalog.json)
        FROM stored s WHERE s.kind IS NOT NULL),
       (SELECT COALESCE(pg_catalog.json_agg(u ORDER BY u.label), '[]'::pg_catalog.json)
        FROM untrusted u),
       (SELECT COALESCE(pg_catalog.json_agg(ARRAY[n.nspname::pg_catalog.text, c.relname::pg_catalog.text]
                                            ORDER BY n.nspname, c.relname), '[]'::pg_catalog.json)
        FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m}'::pg_catalog."char"[])
          AND NOT c.relnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
          AND pg_catalog.has_table_privilege(c.oid, 'SELECT'))
"""
"""One round of the code check (see ``check_calls``): what the names of a level of
definitions resolve to, the types a value can have, the code stored on what is read,
and what of it is refused, untrusted, still to read, and to lock."""
