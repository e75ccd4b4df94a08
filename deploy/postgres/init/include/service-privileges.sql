-- What a service's runtime role may do in the service's database. Run in that database as a superuser
-- (or its owner) after `SET backorder.runtime_role = <role>`; idempotent. 10-service-databases.sql runs
-- it for each service, backbone.testing.databases.service_database for a test's database.
--
-- The owner runs the migrations, so the tables and sequences it creates from now on get their grants
-- from its default privileges: all DML on read models, outbox, inbox, parked events, snapshots...
-- (no TRUNCATE, no DDL). Backbone migration 006 then takes UPDATE and DELETE on the event store back
-- and adds the trigger that refuses them to everyone. Tables from before the runtime role existed (an
-- upgraded installation) get the same grants here; an append-only table (guarded by that trigger)
-- keeps SELECT and INSERT only, and the migrations' record SELECT only, whatever was granted before.
DO $$
DECLARE
    runtime name := current_setting('backorder.runtime_role');
    owner_oid oid := (SELECT datdba FROM pg_database WHERE datname = current_database());
    owner_name name := (SELECT rolname FROM pg_roles WHERE oid = owner_oid);
    rel record;
BEGIN
    IF runtime = owner_name THEN
        RAISE EXCEPTION 'the runtime role must not be %, the owner of %', owner_name, current_database();
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', runtime);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public'
                   ' GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', owner_name, runtime);
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public'
                   ' GRANT USAGE, SELECT ON SEQUENCES TO %I', owner_name, runtime);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', runtime);
    FOR rel IN
        SELECT c.oid::regclass AS name, c.relname,
               EXISTS (
                   SELECT FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                   WHERE t.tgrelid = c.oid AND p.proname = 'refuse_history_rewrite'
               ) AS append_only,
               -- every one of them: has_table_privilege with a list is true when any one is held
               (has_table_privilege(runtime, c.oid, 'SELECT') AND has_table_privilege(runtime, c.oid, 'INSERT')
                AND has_table_privilege(runtime, c.oid, 'UPDATE')
                AND has_table_privilege(runtime, c.oid, 'DELETE')) AS granted
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relowner = owner_oid
    LOOP
        IF rel.append_only THEN
            EXECUTE format('GRANT SELECT, INSERT ON %s TO %I', rel.name, runtime);
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM %I', rel.name, runtime);
        ELSIF rel.relname = 'schema_migrations' THEN  -- the owner's record (backbone.db.migrate)
            EXECUTE format('GRANT SELECT ON %s TO %I', rel.name, runtime);
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %I', rel.name, runtime);
        ELSIF NOT rel.granted THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', rel.name, runtime);
        END IF;
    END LOOP;
END $$;
