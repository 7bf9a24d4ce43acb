-- name: login_excess
-- Everything the session's login ($1 is the app role) can do beyond being the app role: one row
-- per reason, none for a login that is only a member of it. pg_has_role(..., 'MEMBER') follows
-- memberships transitively whatever their INHERIT and SET options: a role a login is a member of
-- is a role it can be granted the use of, so every one but the app role counts.
WITH login AS (
    SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb
    FROM pg_roles WHERE rolname = session_user
), reasons AS (
    SELECT 'is a superuser' AS reason FROM login WHERE rolsuper
    UNION ALL
    SELECT 'has CREATEROLE' FROM login WHERE rolcreaterole AND NOT rolsuper
    UNION ALL
    SELECT 'has CREATEDB' FROM login WHERE rolcreatedb AND NOT rolsuper
    UNION ALL
    SELECT 'owns the database' FROM login, pg_database d
    WHERE d.datname = current_database() AND d.datdba = login.oid AND NOT login.rolsuper
    UNION ALL
    SELECT format('owns %s objects of schema %s', count(*), current_schema())
    FROM login, pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relowner = login.oid
      AND NOT login.rolsuper
    HAVING count(*) > 0
    UNION ALL
    SELECT format('is a member of %s%s', r.rolname,
                  CASE WHEN r.rolsuper THEN ' (a superuser)'
                       WHEN EXISTS (SELECT FROM pg_class c
                                    WHERE c.relnamespace = current_schema()::regnamespace
                                      AND c.relowner = r.oid)
                       THEN ' (owner of the schema)'
                       ELSE '' END)
    FROM login, pg_roles r
    WHERE NOT login.rolsuper AND r.oid <> login.oid AND r.rolname <> $1
      AND r.rolname <> 'pg_database_owner'  -- reported above as "owns the database"
      AND pg_has_role(login.oid, r.oid, 'MEMBER')
)
SELECT (SELECT rolname FROM login) AS login, array_agg(reason ORDER BY reason) AS reasons
FROM reasons;
