-- migrate:up
-- keygate 0006: keygate_key_lookup, the key lookup returning the stored types.
--
-- 0005's keygate_key_by_hash converts every timestamp to µs since the epoch with
-- numeric extract(epoch …) arithmetic and casts the ids and networks to text:
-- about a fifth of the server's CPU for this one-row lookup. This function
-- returns the columns as stored (keygate reads the text output of timestamptz,
-- uuid and cidr[] directly) and not the hash, which the caller has. The columns
-- are Storage/KeyStore.swift's recordColumns.
--
-- A new function beside the old one, not a replacement: during an upgrade the
-- running (older) workers keep calling keygate_key_by_hash until they are
-- restarted, and a rollback to the older binary finds it still there. A later
-- migration drops it.
CREATE FUNCTION keygate_key_lookup(wanted bytea)
RETURNS TABLE (
    id uuid, name text, key_prefix text, environment text, user_id uuid,
    scopes text[], allowed_paths text[], allowed_ips cidr[],
    rate_limit_per_minute integer, rate_limit_per_hour integer, burst integer,
    quota_daily bigint, quota_monthly bigint, active boolean,
    created_at timestamptz, updated_at timestamptz, expires_at timestamptz,
    last_used_at timestamptz, last_used_endpoint text, request_count bigint,
    revoked_at timestamptz, rotated_from uuid)
LANGUAGE plpgsql STABLE
-- No SET clause (such as a pinned search_path): it would make every call save and
-- restore settings, which costs more than the lookup. Not SECURITY DEFINER either.
AS $$
BEGIN
    RETURN QUERY
    SELECT k.id, k.name, k.key_prefix, k.environment, k.user_id,
           k.scopes, k.allowed_paths, k.allowed_ips,
           k.rate_limit_per_minute, k.rate_limit_per_hour, k.burst,
           k.quota_daily, k.quota_monthly, k.active,
           k.created_at, k.updated_at, k.expires_at, k.last_used_at,
           k.last_used_endpoint, k.request_count, k.revoked_at, k.rotated_from
    FROM api_keys k
    WHERE k.key_hash = wanted;
END;
$$;

-- migrate:down
DROP FUNCTION keygate_key_lookup(bytea);
