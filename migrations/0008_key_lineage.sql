-- migrate:up
-- keygate 0008: a key and its rotations share one rate window and one quota.
--
-- Rate limits and quotas were counted per key id, and a rotation makes a key with a new
-- id: rotating a key (self-service may rotate its own) handed it a fresh daily and
-- monthly quota each time, and during a grace period the two keys had a window each.
-- lineage_id is the id of the first key of a rotation chain, NULL for that first key
-- itself (readers take coalesce(lineage_id, id)); the rate table and api_key_quota_usage
-- count per lineage. A rotation's successor inherits its predecessor's (set by the
-- trigger below, whatever inserts the row); a key made through self-service is given
-- its maker's.
--
-- Only the keys of rotation chains are written, under a short lock wait: ADD COLUMN
-- takes an exclusive lock on api_keys until this migration commits, and key lookups
-- queue behind it. If the lock is not granted within 5 s (a long transaction on
-- api_keys), the migration fails and changes nothing; run it again.
SET LOCAL lock_timeout = '5s';
ALTER TABLE api_keys ADD COLUMN lineage_id uuid;

CREATE FUNCTION keygate_set_lineage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.lineage_id IS NULL AND NEW.rotated_from IS NOT NULL THEN
        SELECT coalesce(k.lineage_id, k.id) INTO NEW.lineage_id FROM api_keys k WHERE k.id = NEW.rotated_from;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER api_keys_set_lineage
    BEFORE INSERT ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keygate_set_lineage();

-- Existing rotation chains: each later key gets its chain's first key (rotated_from is
-- indexed). No change of any key's settings: no updated_at bump, no cache notification.
ALTER TABLE api_keys DISABLE TRIGGER USER;
WITH RECURSIVE chain (id, root) AS (
    SELECT k.id, k.rotated_from FROM api_keys k JOIN api_keys first ON first.id = k.rotated_from
    WHERE first.rotated_from IS NULL
    UNION ALL
    SELECT k.id, c.root FROM api_keys k JOIN chain c ON k.rotated_from = c.id
)
UPDATE api_keys k SET lineage_id = chain.root FROM chain WHERE k.id = chain.id;
ALTER TABLE api_keys ENABLE TRIGGER USER;

-- Quota counts stored under a later key of a chain move to the chain's lineage.
INSERT INTO api_key_quota_usage (key_id, day, requests)
SELECT k.lineage_id, q.day, sum(q.requests)
FROM api_key_quota_usage q JOIN api_keys k ON k.id = q.key_id
WHERE k.rotated_from IS NOT NULL AND k.lineage_id IS NOT NULL -- (rotated_from: indexed, with statistics)
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (key_id, day) DO UPDATE SET requests = api_key_quota_usage.requests + excluded.requests;
DELETE FROM api_key_quota_usage q USING api_keys k
WHERE k.id = q.key_id AND k.rotated_from IS NOT NULL AND k.lineage_id IS NOT NULL;

-- The lookup through a transaction pooler, now with lineage_id (Storage/KeyStore.swift's
-- recordColumns). Beside 0006's keygate_key_lookup, which workers of the previous
-- release call until they are restarted.
CREATE FUNCTION keygate_key_lookup2(wanted bytea)
RETURNS TABLE (
    id uuid, name text, key_prefix text, environment text, user_id uuid,
    scopes text[], allowed_paths text[], allowed_ips cidr[],
    rate_limit_per_minute integer, rate_limit_per_hour integer, burst integer,
    quota_daily bigint, quota_monthly bigint, active boolean,
    created_at timestamptz, updated_at timestamptz, expires_at timestamptz,
    last_used_at timestamptz, last_used_endpoint text, request_count bigint,
    revoked_at timestamptz, rotated_from uuid, lineage_id uuid)
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN QUERY
    SELECT k.id, k.name, k.key_prefix, k.environment, k.user_id,
           k.scopes, k.allowed_paths, k.allowed_ips,
           k.rate_limit_per_minute, k.rate_limit_per_hour, k.burst,
           k.quota_daily, k.quota_monthly, k.active,
           k.created_at, k.updated_at, k.expires_at, k.last_used_at,
           k.last_used_endpoint, k.request_count, k.revoked_at, k.rotated_from, coalesce(k.lineage_id, k.id)
    FROM api_keys k
    WHERE k.key_hash = wanted;
END;
$$;

-- migrate:down
-- Quota counts stay under the lineage's first key (they are not split back).
DROP FUNCTION keygate_key_lookup2(bytea);
DROP TRIGGER api_keys_set_lineage ON api_keys;
DROP FUNCTION keygate_set_lineage();
ALTER TABLE api_keys DROP COLUMN lineage_id;
