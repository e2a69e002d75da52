-- Campaigns created through the API (POST /campaigns, PUT /campaigns/{name}). The config file's campaigns are
-- not stored here: the file stays their source; at start (and on every reload) the two sets are merged, and a
-- name may belong to only one of them. The definition is the CampaignConfig as the API validated it, so a
-- restart rebuilds exactly what was accepted.
CREATE TABLE campaigns (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'),
    definition  jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1 CHECK (version >= 1),   -- +1 per update: optimistic concurrency
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text        NOT NULL DEFAULT '',                       -- the API token's name
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text        NOT NULL DEFAULT ''
);
