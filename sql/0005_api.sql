-- The HTTP API (callcore.api): bearer tokens created with `callcore api token create`, and Idempotency-Keys.

-- Only the SHA-256 of a token is stored; the token itself is printed once when it is created.
-- An agent token names the agent it acts for; other roles name none.
CREATE TABLE api_tokens (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'integrator')),
    agent_id   text        NULL,
    sha256     text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz NULL,
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);

-- A name identifies one live token (revoked ones keep their name for the record).
CREATE UNIQUE INDEX api_tokens_live_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

COMMENT ON TABLE api_tokens IS 'API bearer tokens (hashes only); see docs/api.md';

-- One row per (token name, Idempotency-Key): the first request's route, body hash and response.
-- status and response are NULL while that first request still runs.
CREATE TABLE idempotency_keys (
    owner      text        NOT NULL,
    key        text        NOT NULL,
    route      text        NOT NULL,
    body_hash  text        NOT NULL,
    status     integer     NULL,
    response   jsonb       NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

COMMENT ON TABLE idempotency_keys IS 'Idempotency-Key replay store of the HTTP API; expired rows are purged';
