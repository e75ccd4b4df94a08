-- One role and one database per service, so each service owns its data and cannot read another's.
-- The single definition for both setups: the postgres:16 image runs it once on an empty data directory
-- (docker-entrypoint-initdb.d), and deploy/local/infra.py runs it with psql on every `up`.
-- Hence idempotent: \gexec runs only the statements that are still needed.
-- Development credentials: each password equals its role name.
\set ON_ERROR_STOP on

CREATE TEMP TABLE backorder_service (rolename name PRIMARY KEY);
INSERT INTO backorder_service VALUES
  ('backorder_order'), ('backorder_inventory'), ('backorder_procurement'), ('backorder_notifier');

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', rolename, rolename)
  FROM backorder_service WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = rolename)
\gexec

-- CREATE DATABASE cannot run inside a transaction or a DO block, hence \gexec.
SELECT format('CREATE DATABASE %I OWNER %I', rolename, rolename)
  FROM backorder_service WHERE NOT EXISTS (SELECT FROM pg_database d WHERE d.datname = rolename)
\gexec

-- PUBLIC may connect to any new database by default; take that away so only the owner (and superusers) can.
-- CREATE on schema public needs no revoke: PostgreSQL 15+ no longer grants it to PUBLIC.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', rolename) FROM backorder_service
\gexec

DROP TABLE backorder_service;
