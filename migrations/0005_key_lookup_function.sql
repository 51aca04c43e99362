-- migrate:up
-- keygate 0005: the key lookup by hash as a PL/pgSQL function.
--
-- Workers reach PostgreSQL through PgBouncer in transaction pooling mode, where
-- keygate cannot keep prepared statements (PgBouncer 1.18), so every plain
-- SELECT is parsed and planned again: for this lookup that was most of its
-- cost. PL/pgSQL keeps the plan of the query below for the life of the server
-- connection (which PgBouncer reuses across transactions), so only the trivial
-- call is planned per request. Columns are those of Storage/KeyStore.swift
-- (times as µs since the epoch).
CREATE FUNCTION keygate_key_by_hash(wanted bytea)
RETURNS TABLE (
    id text, name text, key_prefix text, environment text, user_id text,
    scopes text[], allowed_paths text[], allowed_ips text[],
    rate_limit_per_minute integer, rate_limit_per_hour integer, burst integer,
    quota_daily bigint, quota_monthly bigint, active boolean,
    created_at bigint, updated_at bigint, expires_at bigint, last_used_at bigint,
    last_used_endpoint text, request_count bigint, revoked_at bigint,
    rotated_from text, key_hash bytea)
LANGUAGE plpgsql STABLE
-- No SET clause (such as a pinned search_path): it would make every call save and
-- restore settings, which costs more than the lookup. Not SECURITY DEFINER either.
AS $$
BEGIN
    RETURN QUERY
    SELECT k.id::text, k.name, k.key_prefix, k.environment, k.user_id::text,
           k.scopes, k.allowed_paths, k.allowed_ips::text[],
           k.rate_limit_per_minute, k.rate_limit_per_hour, k.burst,
           k.quota_daily, k.quota_monthly, k.active,
           (extract(epoch FROM k.created_at) * 1000000)::bigint,
           (extract(epoch FROM k.updated_at) * 1000000)::bigint,
           (extract(epoch FROM k.expires_at) * 1000000)::bigint,
           (extract(epoch FROM k.last_used_at) * 1000000)::bigint,
           k.last_used_endpoint, k.request_count,
           (extract(epoch FROM k.revoked_at) * 1000000)::bigint,
           k.rotated_from::text, k.key_hash
    FROM api_keys k
    WHERE k.key_hash = wanted;
END;
$$;

-- migrate:down
DROP FUNCTION keygate_key_by_hash(bytea);
