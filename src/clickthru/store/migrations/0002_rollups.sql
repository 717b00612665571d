-- Counters kept up to date as events are stored, so that reports never scan raw events.
-- Each is keyed by site first (every report is for some sites) and by the bot flag last
-- (reports leave bots out unless asked). `clickthru rollup --rebuild` recomputes the three
-- rollup tables and `firsts` from `events`, and `reject_counts` from `rejects`.
--
-- unique_clicks / unique_views count each (list, item) once: the first click or view of a
-- recommended item in a list served once. CTR is unique_clicks / unique_views.

CREATE TABLE rollup_hourly (
    site          TEXT NOT NULL,
    hour          INTEGER NOT NULL,          -- received_at // 3,600,000 (UTC hours since 1970)
    placement     TEXT NOT NULL,
    bot           INTEGER NOT NULL,
    clicks        INTEGER NOT NULL,
    views         INTEGER NOT NULL,
    serves        INTEGER NOT NULL,
    unique_clicks INTEGER NOT NULL,
    unique_views  INTEGER NOT NULL,
    PRIMARY KEY (site, hour, placement, bot)
) WITHOUT ROWID;

CREATE TABLE rollup_items (
    site          TEXT NOT NULL,
    day           INTEGER NOT NULL,          -- received_at // 86,400,000 (UTC days since 1970)
    placement     TEXT NOT NULL,
    item          TEXT NOT NULL,
    bot           INTEGER NOT NULL,
    clicks        INTEGER NOT NULL,
    views         INTEGER NOT NULL,
    serves        INTEGER NOT NULL,
    unique_clicks INTEGER NOT NULL,
    unique_views  INTEGER NOT NULL,
    PRIMARY KEY (site, day, placement, item, bot)
) WITHOUT ROWID;

CREATE TABLE rollup_positions (
    site          TEXT NOT NULL,
    day           INTEGER NOT NULL,
    placement     TEXT NOT NULL,
    position      INTEGER NOT NULL,
    bot           INTEGER NOT NULL,
    clicks        INTEGER NOT NULL,
    views         INTEGER NOT NULL,
    serves        INTEGER NOT NULL,
    unique_clicks INTEGER NOT NULL,
    unique_views  INTEGER NOT NULL,
    PRIMARY KEY (site, day, placement, position, bot)
) WITHOUT ROWID;

-- The (list, item) pairs already clicked or viewed: what makes a click or view "unique".
CREATE TABLE firsts (
    site    TEXT NOT NULL,
    list_id TEXT NOT NULL,
    item    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (site, list_id, item, kind)
) WITHOUT ROWID;

-- Refused events per reason; site '' when the request never got as far as a token.
CREATE TABLE reject_counts (
    site   TEXT NOT NULL,
    hour   INTEGER NOT NULL,
    reason TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (site, hour, reason)
) WITHOUT ROWID;

-- Events sent again and stored once. They leave no row behind, so this count is kept
-- only here and a rebuild leaves it alone.
CREATE TABLE duplicate_counts (
    site   TEXT NOT NULL,
    hour   INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (site, hour)
) WITHOUT ROWID;
