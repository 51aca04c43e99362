-- migrate:up
-- keygate 0001: plan tiers, users, API keys.
--
-- Keys are stored only as HMAC-SHA-256(pepper, key) (32 bytes). No column can
-- hold a raw key: key_prefix is capped at 32 characters, while a full key is
-- at least 38 characters of body + checksum alone (SPEC §4).

-- Shared trigger function: keep updated_at current on every UPDATE.
CREATE FUNCTION keygate_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- Plan tiers: default limits applied to new keys of a user on that tier.
-- NULL means "no limit".
CREATE TABLE plan_tiers (
    tier                  text PRIMARY KEY
                          CHECK (tier IN ('free', 'pro', 'enterprise')),
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    rate_limit_per_hour   integer CHECK (rate_limit_per_hour > 0),
    burst                 integer CHECK (burst > 0),
    quota_daily           bigint  CHECK (quota_daily > 0),
    quota_monthly         bigint  CHECK (quota_monthly > 0)
);

INSERT INTO plan_tiers (tier, rate_limit_per_minute, rate_limit_per_hour, burst, quota_daily, quota_monthly) VALUES
    ('free',          60,    1000,  10,     10000,     100000),
    ('pro',          600,   20000,  50,    500000,   10000000),
    ('enterprise',  6000,  300000, 200,      NULL,       NULL);

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL
                CHECK (char_length(email) BETWEEN 3 AND 320
                       AND position('@' IN email) > 1
                       AND email = btrim(email)),
    plan_tier   text NOT NULL DEFAULT 'free'
                CHECK (plan_tier IN ('free', 'pro', 'enterprise'))
                REFERENCES plan_tiers (tier) ON UPDATE CASCADE,
    external_id text UNIQUE
                CHECK (char_length(external_id) BETWEEN 1 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Case-insensitive uniqueness (and lookup) of e-mail addresses.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
-- Cursor pagination of GET /users.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION keygate_set_updated_at();

CREATE TABLE api_keys (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_hash              bytea NOT NULL UNIQUE
                          CHECK (octet_length(key_hash) = 32),
    key_prefix            text NOT NULL
                          CHECK (char_length(key_prefix) BETWEEN 1 AND 32),
    name                  text NOT NULL
                          CHECK (char_length(name) BETWEEN 1 AND 200),
    user_id               uuid REFERENCES users (id) ON DELETE SET NULL,
    environment           text NOT NULL DEFAULT 'live'
                          CHECK (environment IN ('live', 'test')),
    scopes                text[] NOT NULL DEFAULT '{}'
                          CHECK (scopes <@ ARRAY['admin', 'keys:read', 'keys:write',
                                                 'symbols:read', 'symbols:write',
                                                 'users:read', 'users:write',
                                                 'usage:read', 'audit:read',
                                                 'keys:verify', 'self']::text[]
                                 AND coalesce(array_ndims(scopes), 1) = 1),
    allowed_paths         text[] NOT NULL DEFAULT '{}'
                          CHECK (array_position(allowed_paths, NULL) IS NULL
                                 AND coalesce(array_ndims(allowed_paths), 1) = 1),
    allowed_ips           cidr[] NOT NULL DEFAULT '{}'
                          CHECK (array_position(allowed_ips, NULL) IS NULL
                                 AND coalesce(array_ndims(allowed_ips), 1) = 1),
    rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
    rate_limit_per_hour   integer CHECK (rate_limit_per_hour > 0),
    burst                 integer CHECK (burst > 0),
    quota_daily           bigint  CHECK (quota_daily > 0),
    quota_monthly         bigint  CHECK (quota_monthly > 0),
    active                boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    expires_at            timestamptz,
    last_used_at          timestamptz,
    last_used_endpoint    text,
    request_count         bigint NOT NULL DEFAULT 0 CHECK (request_count >= 0),
    revoked_at            timestamptz,
    rotated_from          uuid REFERENCES api_keys (id) ON DELETE SET NULL
                          CHECK (rotated_from <> id),
    -- id of the key that created this one; deliberately no FK, so it
    -- survives the deletion of the creating key.
    created_by            uuid
);

-- Lookup by hash is served by the UNIQUE constraint on key_hash.
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id, created_at, id)
    WHERE user_id IS NOT NULL;
CREATE INDEX api_keys_active_expires_at_idx ON api_keys (active, expires_at);
CREATE INDEX api_keys_created_at_id_idx ON api_keys (created_at, id);
-- Supports ON DELETE SET NULL of rotated_from and "what replaced this key".
CREATE INDEX api_keys_rotated_from_idx ON api_keys (rotated_from)
    WHERE rotated_from IS NOT NULL;

-- updated_at tracks changes to the key's settings, not the housekeeper's
-- usage bookkeeping (last_used_at, last_used_endpoint, request_count).
CREATE TRIGGER api_keys_set_updated_at
    BEFORE UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - ARRAY['last_used_at', 'last_used_endpoint', 'request_count', 'updated_at'])
          IS DISTINCT FROM
          (to_jsonb(NEW) - ARRAY['last_used_at', 'last_used_endpoint', 'request_count', 'updated_at']))
    EXECUTE FUNCTION keygate_set_updated_at();

-- Key-change notification: payload is the hex of the key's hash, so every
-- host's housekeeper (LISTEN keygate_key_changes) can drop that cache entry.
--   UPDATE / DELETE: OLD.key_hash (and NEW.key_hash too if it ever changed).
--   INSERT: NEW.key_hash, so a briefly cached "unknown key" (negative cache)
--           on another host is dropped as soon as the key exists.
-- Updates that only touch usage bookkeeping columns do not notify (see the
-- WHEN clause), otherwise every usage batch would flush the caches.
-- NOTIFY is transactional: delivered on commit, nothing on rollback.
CREATE FUNCTION keygate_notify_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('keygate_key_changes', encode(NEW.key_hash, 'hex'));
    ELSE
        PERFORM pg_notify('keygate_key_changes', encode(OLD.key_hash, 'hex'));
        IF TG_OP = 'UPDATE' AND NEW.key_hash IS DISTINCT FROM OLD.key_hash THEN
            PERFORM pg_notify('keygate_key_changes', encode(NEW.key_hash, 'hex'));
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify_insert_delete
    AFTER INSERT OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION keygate_notify_key_change();

CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((to_jsonb(OLD) - ARRAY['last_used_at', 'last_used_endpoint', 'request_count', 'updated_at'])
          IS DISTINCT FROM
          (to_jsonb(NEW) - ARRAY['last_used_at', 'last_used_endpoint', 'request_count', 'updated_at']))
    EXECUTE FUNCTION keygate_notify_key_change();

-- migrate:down
DROP TABLE api_keys;
DROP FUNCTION keygate_notify_key_change();
DROP TABLE users;
DROP TABLE plan_tiers;
DROP FUNCTION keygate_set_updated_at();
