-- 002: price history (PostgreSQL), written by product-service with each price
-- change in the same statement as the price itself. Append-only: rows are
-- never updated or deleted (a trigger refuses both).
-- No BEGIN/COMMIT here: the seeder owns the transaction.
CREATE TABLE IF NOT EXISTS price_history (
    seq BIGSERIAL PRIMARY KEY,
    product_id TEXT NOT NULL
        CONSTRAINT price_history_product_id_check
        CHECK (product_id ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$'),
    amount NUMERIC NOT NULL
        CONSTRAINT price_history_amount_check
        CHECK (amount >= 0 AND amount < 1e20 AND scale(amount) <= 10),
    currency CHAR(3) NOT NULL
        CONSTRAINT price_history_currency_check
        CHECK (currency ~ '^[A-Z]{3}$'),
    effective_from TEXT NOT NULL
        CONSTRAINT price_history_effective_from_check
        CHECK (effective_from ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'),
    changed_by TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS price_history_product ON price_history (product_id, seq);
CREATE OR REPLACE FUNCTION price_history_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'price history is append-only';
END;
$$;
DROP TRIGGER IF EXISTS price_history_no_change ON price_history;
CREATE TRIGGER price_history_no_change BEFORE UPDATE OR DELETE ON price_history
    FOR EACH ROW EXECUTE FUNCTION price_history_append_only();
