-- migrate:up
-- keygate 0002: per-request usage (monthly partitions) and the append-only
-- audit log of admin operations.

-- One row per authenticated request, written in batches by the housekeeper
-- from the shared-memory usage ring. key_id has no FK: usage rows outlive
-- deleted keys. Partitioned by month (UTC) so old data is pruned by dropping
-- whole partitions.
CREATE TABLE api_key_usage (
    key_id           uuid NOT NULL,
    at               timestamptz NOT NULL,
    method           text,
    route            text,
    path             text,
    status_code      smallint CHECK (status_code BETWEEN 100 AND 599),
    response_time_us integer  CHECK (response_time_us >= 0),
    remote_addr      inet
) PARTITION BY RANGE (at);

-- Catches rows outside every monthly partition (clock skew, late drains,
-- housekeeper not run for a while). keygate_ensure_usage_partitions() moves
-- them into the right monthly partition when it creates that partition.
CREATE TABLE api_key_usage_default PARTITION OF api_key_usage DEFAULT;

-- Per-key request log, usage summaries and quota counting.
CREATE INDEX api_key_usage_key_id_at_idx ON api_key_usage (key_id, at);

-- Range partitions of api_key_usage (not the default one), with their bounds
-- [range_start, range_end). Bounds are NULL for a partition someone created
-- with MINVALUE/MAXVALUE bounds.
CREATE FUNCTION keygate_usage_partitions()
RETURNS TABLE (partition regclass, range_start timestamptz, range_end timestamptz)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
SET datestyle TO 'ISO, YMD'
SET timezone TO 'UTC'
AS $$
    SELECT c.oid::regclass,
           (m)[1]::timestamptz,
           (m)[2]::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') AS m
    WHERE i.inhparent = 'api_key_usage'::regclass
      AND i.inhrelid <> (SELECT pt.partdefid FROM pg_partitioned_table pt
                         WHERE pt.partrelid = 'api_key_usage'::regclass)
    ORDER BY 2;
$$;

-- Creates the monthly partitions (UTC months) from the current month up to
-- months_ahead months ahead, where missing. Rows already sitting in the
-- default partition for such a month are moved into the new partition.
-- Returns the number of partitions created. Called by the housekeeper.
CREATE FUNCTION keygate_ensure_usage_partitions(months_ahead integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET datestyle TO 'ISO, YMD'
SET timezone TO 'UTC'
AS $$
DECLARE
    parent      regclass := 'api_key_usage'::regclass;
    parent_ns   text;
    default_rel regclass;
    first_month timestamptz := date_trunc('month', now());
    lo          timestamptz;
    hi          timestamptz;
    part_name   text;
    part_rel    text;
    created     integer := 0;
    moved       boolean;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, got %', months_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT n.nspname INTO parent_ns
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent;

    SELECT nullif(p.partdefid, 0)::regclass INTO default_rel
    FROM pg_partitioned_table p
    WHERE p.partrelid = parent;

    FOR i IN 0 .. months_ahead LOOP
        lo := first_month + make_interval(months => i);
        hi := lo + interval '1 month';

        -- Skip if a partition already covers any part of [lo, hi).
        CONTINUE WHEN EXISTS (
            SELECT 1 FROM keygate_usage_partitions() p
            WHERE p.range_start < hi AND p.range_end > lo);

        part_name := 'api_key_usage_' || to_char(lo, 'YYYY_MM');
        part_rel  := format('%I.%I', parent_ns, part_name);

        moved := false;
        IF default_rel IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE at >= %L AND at < %L)',
                           default_rel, lo, hi)
                INTO moved;
        END IF;

        IF moved THEN
            -- The default partition holds rows of this month: creating the
            -- partition directly would fail, so build it, move the rows,
            -- then attach it.
            EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           part_rel, parent);
            EXECUTE format('WITH m AS (DELETE FROM %s WHERE at >= %L AND at < %L RETURNING *) '
                           'INSERT INTO %s SELECT * FROM m',
                           default_rel, lo, hi, part_rel);
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%L) TO (%L)',
                           parent, part_rel, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %s PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           part_rel, parent, lo, hi);
        END IF;
        created := created + 1;
    END LOOP;

    RETURN created;
END;
$$;

-- Prunes usage data older than cutoff: drops every monthly partition that
-- ends at or before cutoff and deletes older rows from the default
-- partition. A partition that straddles cutoff is kept whole. Refuses a
-- cutoff in the future. Returns the number of partitions dropped.
CREATE FUNCTION keygate_drop_usage_partitions_before(cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET datestyle TO 'ISO, YMD'
SET timezone TO 'UTC'
AS $$
DECLARE
    p           record;
    default_rel regclass;
    dropped     integer := 0;
BEGIN
    IF cutoff IS NULL OR cutoff > now() THEN
        RAISE EXCEPTION 'cutoff must be a time in the past, got %', cutoff
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR p IN
        SELECT * FROM keygate_usage_partitions()
        WHERE range_end IS NOT NULL AND range_end <= cutoff
    LOOP
        EXECUTE format('DROP TABLE %s', p.partition);
        dropped := dropped + 1;
    END LOOP;

    SELECT nullif(pt.partdefid, 0)::regclass INTO default_rel
    FROM pg_partitioned_table pt
    WHERE pt.partrelid = 'api_key_usage'::regclass;

    IF default_rel IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s WHERE at < %L', default_rel, cutoff);
    END IF;

    RETURN dropped;
END;
$$;

-- Partitions for the current month and the next 2, computed at migration
-- time (the function builds them with format()/EXECUTE).
DO $$
BEGIN
    PERFORM keygate_ensure_usage_partitions(2);
END;
$$;

-- Admin operations (key.*, symbol.*, user.*). Append-only.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_key_id uuid,
    action       text NOT NULL
                 CHECK (action ~ '^(key|symbol|user)\.[a-z_]+$'),
    target_type  text,
    target_id    text,
    remote_addr  inet,
    request_id   text,
    details      jsonb NOT NULL DEFAULT '{}'
                 CHECK (jsonb_typeof(details) = 'object')
);

CREATE INDEX audit_log_at_id_idx ON audit_log (at, id);
CREATE INDEX audit_log_actor_key_id_at_idx ON audit_log (actor_key_id, at);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, at);

-- Refuses UPDATE, DELETE and TRUNCATE. Statement-level, so even an UPDATE or
-- DELETE matching no row is refused. (An operator pruning old entries has to
-- disable the triggers explicitly, as the table owner.)
CREATE FUNCTION keygate_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('%s on audit_log refused', TG_OP);
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_audit_log_append_only();

-- migrate:down
DROP TABLE audit_log;
DROP FUNCTION keygate_audit_log_append_only();
DROP FUNCTION keygate_drop_usage_partitions_before(timestamptz);
DROP FUNCTION keygate_ensure_usage_partitions(integer);
DROP FUNCTION keygate_usage_partitions();
DROP TABLE api_key_usage;
