-- The event store is the history every read model, snapshot and published event derives from: it is
-- appended to, never rewritten. Two guards, for two kinds of mistakes:
-- 1. privileges: no role but the owner may UPDATE, DELETE or TRUNCATE it. A service runs as a login role
--    of its own (DATABASE_URL) that the owner's default privileges give full DML on the read models,
--    outbox, inbox and the like (deploy/postgres/init); here it keeps SELECT and INSERT on the log only.
-- 2. a trigger refusing UPDATE, DELETE and TRUNCATE for everyone, the owner and superusers included, so
--    that a migration, a rebuild or an operator's session cannot rewrite history by accident. Rebuilds
--    truncate read models, never the log; snapshots live in their own table and stay replaceable.
--    Whoever really must rewrite an event (a legal erasure) disables the trigger first, deliberately:
--    ALTER TABLE event_store DISABLE TRIGGER event_store_append_only (the owner may).
CREATE FUNCTION refuse_history_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %: the event store is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'append an event that corrects it instead of rewriting history';
END $$;

CREATE TRIGGER event_store_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_rewrite();

-- Take UPDATE, DELETE and TRUNCATE away from every role that was granted them (default privileges give
-- the runtime role all DML on the owner's new tables, this one included when migration 001 created it).
-- The migrations' record is the owner's too: the runtime role may read it, not change it.
DO $$
DECLARE
    grant_ record;
BEGIN
    FOR grant_ IN
        SELECT DISTINCT c.oid::regclass AS relation, a.grantee, a.privilege_type
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid IN ('event_store'::regclass, 'schema_migrations'::regclass)
          AND a.grantee <> c.relowner
          AND (a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
               OR (a.privilege_type = 'INSERT' AND c.oid = 'schema_migrations'::regclass))
    LOOP
        EXECUTE format(
            'REVOKE %s ON %s FROM %s',
            grant_.privilege_type,
            grant_.relation,
            CASE WHEN grant_.grantee = 0 THEN 'PUBLIC' ELSE grant_.grantee::regrole::text END  -- quoted as needed
        );
    END LOOP;
END $$;
