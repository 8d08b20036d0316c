-- 004: tenants (CONTRACT §12, PostgreSQL). No BEGIN/COMMIT here: the seeder
-- owns the transaction.
--
-- product_prices stays the default tenant's table with its key (seed files
-- upsert ON CONFLICT (product_id)); every other tenant's prices live in
-- tenant_prices under (tenant_id, product_id). History rows name their
-- tenant; rows written before belong to 'default'.
--
-- Row-level security: every tenant table shows a role only the rows of the
-- tenant named by the transaction-local setting pricing.tenant
-- (set_config('pricing.tenant', T, true), or SET LOCAL). A role with no
-- tenant set reads zero rows. The owner (the role that ran the migrations)
-- bypasses the policies, as PostgreSQL owners do: deploy TENANCY=on with an
-- application role that owns nothing (docs/internals/tenancy.md).
ALTER TABLE product_prices ADD COLUMN IF NOT EXISTS tenant_id TEXT NOT NULL DEFAULT 'default'
    CONSTRAINT product_prices_tenant_default CHECK (tenant_id = 'default');

CREATE TABLE IF NOT EXISTS tenant_prices (
    tenant_id TEXT NOT NULL
        CONSTRAINT tenant_prices_tenant_check
        CHECK (tenant_id ~ '^[a-z0-9-]{1,64}$' AND tenant_id <> 'default'),
    product_id TEXT NOT NULL
        CONSTRAINT tenant_prices_product_id_check
        CHECK (product_id ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$'),
    price NUMERIC NOT NULL
        CONSTRAINT tenant_prices_price_check
        CHECK (price >= 0 AND price < 1e20 AND scale(price) <= 10),
    currency CHAR(3) NOT NULL
        CONSTRAINT tenant_prices_currency_check
        CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (tenant_id, product_id)
);

ALTER TABLE price_history ADD COLUMN IF NOT EXISTS tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS price_history_tenant ON price_history (tenant_id, product_id, seq);

ALTER TABLE product_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_prices ENABLE ROW LEVEL SECURITY;
ALTER TABLE price_history ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON product_prices;
CREATE POLICY tenant_isolation ON product_prices
    USING (tenant_id = current_setting('pricing.tenant', true))
    WITH CHECK (tenant_id = current_setting('pricing.tenant', true));
DROP POLICY IF EXISTS tenant_isolation ON tenant_prices;
CREATE POLICY tenant_isolation ON tenant_prices
    USING (tenant_id = current_setting('pricing.tenant', true))
    WITH CHECK (tenant_id = current_setting('pricing.tenant', true));
DROP POLICY IF EXISTS tenant_isolation ON price_history;
CREATE POLICY tenant_isolation ON price_history
    USING (tenant_id = current_setting('pricing.tenant', true))
    WITH CHECK (tenant_id = current_setting('pricing.tenant', true));

-- One tenant's price in one round trip: the setting is made local to the
-- statement's own transaction before the query runs, so the policies above
-- decide what it sees (SECURITY INVOKER: the caller's role, not the owner's).
CREATE OR REPLACE FUNCTION px_tenant_price(p_tenant TEXT, p_product TEXT)
    RETURNS TABLE (price TEXT, currency TEXT)
    LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('pricing.tenant', p_tenant, true);
    RETURN QUERY
        SELECT p.price::text, p.currency::text FROM product_prices p
            WHERE p_tenant = 'default' AND p.product_id = p_product
        UNION ALL
        SELECT t.price::text, t.currency::text FROM tenant_prices t
            WHERE t.tenant_id = p_tenant AND t.product_id = p_product;
END;
$$;
