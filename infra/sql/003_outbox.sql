-- 003: the transactional outbox of domain events (CONTRACT §10). A price
-- change inserts its event here in the same transaction as the price row;
-- `pricing events relay` publishes and marks it. Keyed by tenant so that
-- tenancy (CONTRACT §12) scopes events without a new table.
-- No BEGIN/COMMIT here: the seeder owns the transaction.
CREATE TABLE IF NOT EXISTS outbox (
    seq BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL DEFAULT 'default',
    id UUID NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    ord BIGINT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'waiting'
        CONSTRAINT outbox_status_check CHECK (status IN ('waiting', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    next_ms BIGINT NOT NULL DEFAULT 0,
    sent_ms BIGINT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox (status, seq);
CREATE INDEX IF NOT EXISTS outbox_by_subject ON outbox (tenant, subject, ord);
