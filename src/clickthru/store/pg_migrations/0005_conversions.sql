-- Variants and conversions (see SQLite's 0008_conversions.sql). Counters are integer, so
-- that sum() of them is a bigint; sum(value) is cast back to bigint where it is read.
ALTER TABLE events ADD COLUMN variant text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN order_id text;
ALTER TABLE events ADD COLUMN value bigint;
ALTER TABLE events ADD COLUMN currency text;
ALTER TABLE events ADD COLUMN items text;
ALTER TABLE events ADD COLUMN click_id text;
ALTER TABLE events ADD COLUMN click_at bigint;

CREATE TABLE rollup_variants (
    site          text NOT NULL,
    day           bigint NOT NULL,
    placement     text NOT NULL,
    variant       text NOT NULL,
    bot           integer NOT NULL,
    clicks        integer NOT NULL,
    views         integer NOT NULL,
    serves        integer NOT NULL,
    unique_clicks integer NOT NULL,
    unique_views  integer NOT NULL,
    PRIMARY KEY (site, day, placement, variant, bot)
);
INSERT INTO rollup_variants
    SELECT site, day, placement, '', bot, sum(clicks), sum(views), sum(serves),
           sum(unique_clicks), sum(unique_views)
    FROM rollup_items GROUP BY site, day, placement, bot;

CREATE TABLE orders (
    site           text NOT NULL,
    order_id       text NOT NULL,
    received_at    bigint NOT NULL,
    day            bigint NOT NULL,
    value          bigint NOT NULL,
    currency       text NOT NULL,
    items          text NOT NULL,
    page           integer NOT NULL,
    server         integer NOT NULL,
    reports        integer NOT NULL,
    bot            integer NOT NULL,
    click_id       text,
    click_at       bigint,
    list_id        text,
    item           text,
    position       bigint,
    placement      text,
    variant        text,
    bought_clicked integer,
    PRIMARY KEY (site, order_id)
);
CREATE INDEX orders_site_day ON orders (site, day);
