-- Per service: a database, the role that owns it and a login role the service runs as. The owner
-- (backorder_<svc>, DATABASE_MIGRATION_URL) runs the migrations and `rebuild`; the runtime role
-- (backorder_<svc>_app, DATABASE_URL) reads and writes the owner's tables through default privileges
-- (include/service-privileges.sql), but may only SELECT and INSERT the event store, and no DDL.
-- The single definition for both setups: the postgres:16 image runs it once on an empty data directory
-- (docker-entrypoint-initdb.d; it ignores the include folder), and deploy/local/infra.py runs it with psql
-- on every `up`. Hence idempotent: \gexec runs only the statements that are still needed, and the
-- passwords are set again each time (the same ones: they change only when the environment's do).
-- Passwords come from the environment, never from this file: BACKORDER_<SVC>_PASSWORD for the owner,
-- BACKORDER_<SVC>_APP_PASSWORD for the runtime role (generated per installation: `make env` writes them
-- to .env for docker compose, infra.py to <state>/secrets.env).
\set ON_ERROR_STOP on

-- \getenv leaves a variable as it was when the environment lacks it: '' then, refused below.
\set order_password ''
\set order_app_password ''
\set inventory_password ''
\set inventory_app_password ''
\set procurement_password ''
\set procurement_app_password ''
\set notifier_password ''
\set notifier_app_password ''
\set edi_password ''
\set edi_app_password ''
\getenv order_password BACKORDER_ORDER_PASSWORD
\getenv order_app_password BACKORDER_ORDER_APP_PASSWORD
\getenv inventory_password BACKORDER_INVENTORY_PASSWORD
\getenv inventory_app_password BACKORDER_INVENTORY_APP_PASSWORD
\getenv procurement_password BACKORDER_PROCUREMENT_PASSWORD
\getenv procurement_app_password BACKORDER_PROCUREMENT_APP_PASSWORD
\getenv notifier_password BACKORDER_NOTIFIER_PASSWORD
\getenv notifier_app_password BACKORDER_NOTIFIER_APP_PASSWORD
\getenv edi_password BACKORDER_EDI_PASSWORD
\getenv edi_app_password BACKORDER_EDI_APP_PASSWORD

CREATE TEMP TABLE backorder_role (
    rolname  name PRIMARY KEY,
    database name NOT NULL,      -- the service's database
    owner    boolean NOT NULL,   -- owns the database, else its runtime role
    password text NOT NULL
);
INSERT INTO backorder_role VALUES
  ('backorder_order', 'backorder_order', true, :'order_password'),
  ('backorder_order_app', 'backorder_order', false, :'order_app_password'),
  ('backorder_inventory', 'backorder_inventory', true, :'inventory_password'),
  ('backorder_inventory_app', 'backorder_inventory', false, :'inventory_app_password'),
  ('backorder_procurement', 'backorder_procurement', true, :'procurement_password'),
  ('backorder_procurement_app', 'backorder_procurement', false, :'procurement_app_password'),
  ('backorder_notifier', 'backorder_notifier', true, :'notifier_password'),
  ('backorder_notifier_app', 'backorder_notifier', false, :'notifier_app_password'),
  ('backorder_edi', 'backorder_edi', true, :'edi_password'),
  ('backorder_edi_app', 'backorder_edi', false, :'edi_app_password');

-- A missing, short or guessable password stops the script before any role changes.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(upper(r.rolname) || '_PASSWORD', ', ' ORDER BY r.rolname) INTO bad
    FROM backorder_role r
    WHERE length(r.password) < 16 OR EXISTS (SELECT FROM backorder_role o WHERE o.rolname = r.password);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'set % in the environment: at least 16 characters, not a role name', bad
            USING HINT = 'make env (docker compose) or deploy/local/infra.py up generate them';
    END IF;
END $$;

SELECT format('CREATE ROLE %I', rolname)
  FROM backorder_role WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = backorder_role.rolname)
\gexec

-- Also takes away what an older version or an operator may have added; roles log in with a password only.
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L',
              rolname, password)
  FROM backorder_role
\gexec

-- CREATE DATABASE cannot run inside a transaction or a DO block, hence \gexec.
SELECT format('CREATE DATABASE %I OWNER %I', database, rolname)
  FROM backorder_role WHERE owner AND NOT EXISTS (SELECT FROM pg_database d WHERE d.datname = database)
\gexec

-- PUBLIC may connect to any new database by default; take that away so that only the owner, the
-- runtime role (and superusers) can. CREATE on schema public needs no revoke: PostgreSQL 15+ gives it
-- to the database owner only.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', database) FROM backorder_role WHERE owner
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', database, rolname) FROM backorder_role WHERE NOT owner
\gexec

DROP TABLE backorder_role;

-- Default privileges and grants are per database: in each one, what its runtime role may do.
\connect backorder_order
SET backorder.runtime_role = backorder_order_app;
\ir include/service-privileges.sql
\connect backorder_inventory
SET backorder.runtime_role = backorder_inventory_app;
\ir include/service-privileges.sql
\connect backorder_procurement
SET backorder.runtime_role = backorder_procurement_app;
\ir include/service-privileges.sql
\connect backorder_notifier
SET backorder.runtime_role = backorder_notifier_app;
\ir include/service-privileges.sql
\connect backorder_edi
SET backorder.runtime_role = backorder_edi_app;
\ir include/service-privileges.sql
