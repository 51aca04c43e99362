-- migrate:up
-- keygate 0003: tracked symbols and their backfill history.

CREATE TABLE tracked_symbols (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol              text NOT NULL
                        CONSTRAINT tracked_symbols_symbol_key UNIQUE
                        CONSTRAINT tracked_symbols_symbol_check
                        CHECK (symbol = upper(symbol)
                               AND char_length(symbol) BETWEEN 1 AND 32
                               AND symbol ~ '^[A-Z0-9][A-Z0-9.:/-]*$'),
    asset_class         text NOT NULL
                        CHECK (asset_class IN ('stock', 'crypto', 'etf')),
    active              boolean NOT NULL DEFAULT true,
    date_added          timestamptz NOT NULL DEFAULT now(),
    last_backfill       timestamptz,
    backfill_status     text NOT NULL DEFAULT 'pending'
                        CHECK (backfill_status IN ('pending', 'in_progress', 'completed', 'failed')),
    backfill_error      text,
    -- set when a scheduler claims the symbol; a claim older than the lease
    -- is considered abandoned and may be claimed again.
    backfill_started_at timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Lookup by symbol (GET/PUT/DELETE /symbols/{symbol}, stored uppercase) is
-- served by the UNIQUE constraint. The claim query
--   ... WHERE active AND (backfill_status = 'pending' OR
--         (backfill_status IN ('failed','completed') AND last_backfill < $1) OR
--         (backfill_status = 'in_progress' AND backfill_started_at < $2))
--   ORDER BY last_backfill NULLS FIRST ... FOR UPDATE SKIP LOCKED
-- uses this partial index.
CREATE INDEX tracked_symbols_backfill_due_idx
    ON tracked_symbols (backfill_status, last_backfill)
    WHERE active;

CREATE TRIGGER tracked_symbols_set_updated_at
    BEFORE UPDATE ON tracked_symbols
    FOR EACH ROW EXECUTE FUNCTION keygate_set_updated_at();

CREATE TABLE backfill_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol_id   bigint NOT NULL REFERENCES tracked_symbols (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz CHECK (finished_at >= started_at),
    outcome     text CHECK (outcome IN ('completed', 'failed')),
    error       text,
    CHECK (outcome IS NULL OR finished_at IS NOT NULL)
);

CREATE INDEX backfill_history_symbol_id_started_at_idx
    ON backfill_history (symbol_id, started_at DESC);

-- migrate:down
DROP TABLE backfill_history;
DROP TABLE tracked_symbols;
