-- 001: the price table (PostgreSQL).
-- Applied once by `pricing db seed`, inside its transaction and advisory lock,
-- and recorded in schema_migrations. No BEGIN/COMMIT here: the seeder owns
-- the transaction.
--
-- price is an unconstrained NUMERIC so the stored scale is kept ('100.00'
-- stays 100.00, '0.5' stays 0.5); the bounds keep it a plain, finite,
-- non-negative decimal short enough to render (no NaN, no Infinity).
CREATE TABLE IF NOT EXISTS product_prices (
    product_id TEXT PRIMARY KEY
        CONSTRAINT product_prices_product_id_check
        CHECK (product_id ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,63}$'),
    price NUMERIC NOT NULL
        CONSTRAINT product_prices_price_check
        CHECK (price >= 0 AND price < 1e20 AND scale(price) <= 10),
    currency CHAR(3) NOT NULL
        CONSTRAINT product_prices_currency_check
        CHECK (currency ~ '^[A-Z]{3}$')
);
