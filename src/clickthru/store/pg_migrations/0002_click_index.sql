-- The latest clicks of a site (the dashboard asks every few seconds) without walking its
-- views: clicks are a few per cent of events, so this index is small and cheap to keep.
CREATE INDEX events_site_clicks ON events (site, received_at) WHERE kind = 'click';
