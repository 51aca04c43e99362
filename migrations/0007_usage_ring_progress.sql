-- migrate:up
-- keygate 0007: how far each host's usage ring has been stored.
--
-- The housekeeper frees a batch from the ring only after the transaction that stores
-- it has committed. Killed between the two, or left without an answer to its COMMIT
-- (the connection broke), it could not tell whether the batch was stored, and stored it
-- again: every row, request count and quota count twice. Each batch's transaction now
-- also records the ring position it stores up to; before storing after such a doubt
-- (and at start), the housekeeper frees what this row says is stored already.
-- ring_id is random per ring (a master's life); rows not updated for 30 days are from
-- rings long gone and are deleted with the hourly partition maintenance.
CREATE TABLE usage_ring_progress (
    ring_id        uuid        PRIMARY KEY,
    stored_through bigint      NOT NULL CHECK (stored_through >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE usage_ring_progress;
