-- Variants and conversions. A token may name the variant (model or experiment arm) that
-- served its list; events keep it, '' without one. A conversion is an event of kind
-- 'conversion': its list_id, item, position, placement, key_id, issued_at and variant are
-- those of the click it is attributed to ('' and 0 when unattributed).
ALTER TABLE events ADD COLUMN variant TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN order_id TEXT;
ALTER TABLE events ADD COLUMN value INTEGER;          -- millionths of the currency's unit
ALTER TABLE events ADD COLUMN currency TEXT;          -- ISO 4217
ALTER TABLE events ADD COLUMN items TEXT;             -- JSON array of the items bought
ALTER TABLE events ADD COLUMN click_id TEXT;          -- the click it follows, if any
ALTER TABLE events ADD COLUMN click_at INTEGER;       -- when that click was made, unix ms

-- Counters by variant, kept like the other rollups. Everything counted so far had no
-- variant: it is carried over from the item counters.
CREATE TABLE rollup_variants (
    site          TEXT NOT NULL,
    day           INTEGER NOT NULL,
    placement     TEXT NOT NULL,
    variant       TEXT NOT NULL,
    bot           INTEGER NOT NULL,
    clicks        INTEGER NOT NULL,
    views         INTEGER NOT NULL,
    serves        INTEGER NOT NULL,
    unique_clicks INTEGER NOT NULL,
    unique_views  INTEGER NOT NULL,
    PRIMARY KEY (site, day, placement, variant, bot)
) WITHOUT ROWID;
INSERT INTO rollup_variants
    SELECT site, day, placement, '', bot, sum(clicks), sum(views), sum(serves),
           sum(unique_clicks), sum(unique_views)
    FROM rollup_items GROUP BY site, day, placement, bot;

-- One row per (site, order), kept by the aggregator from the conversion events: a page
-- reloaded, or reported by the page and confirmed by the shop, is one order.
CREATE TABLE orders (
    site           TEXT NOT NULL,
    order_id       TEXT NOT NULL,
    received_at    INTEGER NOT NULL,     -- its first report, unix ms
    day            INTEGER NOT NULL,     -- received_at // 86,400,000
    value          INTEGER NOT NULL,     -- millionths; the shop's confirmation wins
    currency       TEXT NOT NULL,
    items          TEXT NOT NULL,        -- JSON array
    page           INTEGER NOT NULL,     -- 1: reported by the page
    server         INTEGER NOT NULL,     -- 1: confirmed by the shop with its API key
    reports        INTEGER NOT NULL,     -- conversion events that told of it
    bot            INTEGER NOT NULL,     -- 1 while only bot-flagged pages reported it
    click_id       TEXT,                 -- the last click within the window; NULL: none
    click_at       INTEGER,
    list_id        TEXT,
    item           TEXT,
    position       INTEGER,
    placement      TEXT,
    variant        TEXT,
    bought_clicked INTEGER,              -- 1: the clicked item was bought; 0: another
    PRIMARY KEY (site, order_id)
);
CREATE INDEX orders_site_day ON orders(site, day);
