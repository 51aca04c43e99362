-- migrate:up
-- keygate 0004: requests counted against each key's quotas, per UTC day.
--
-- The housekeeper adds to these rows with every usage batch it stores (only
-- requests the rate limiter let through count). A pool starting up, or a host
-- seeing a key for the first time, loads today's and this month's counts from
-- here, so quotas survive restarts without counting api_key_usage rows.
-- key_id has no FK, like api_key_usage: the counts outlive deleted keys.
CREATE TABLE api_key_quota_usage (
    key_id   uuid   NOT NULL,
    day      date   NOT NULL,
    requests bigint NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (key_id, day)
);

-- migrate:down
DROP TABLE api_key_quota_usage;
