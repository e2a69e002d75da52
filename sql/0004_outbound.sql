-- Outbound campaigns: leads, every dial attempt, do-not-call lists and scheduled callbacks (callcore.leads).
-- Campaigns themselves live in the YAML config (`campaigns:`); rows name them by their key. Numbers are E.164.

-- One row per CSV import (or API upload): where leads came from, and the import report's counts.
CREATE TABLE lead_imports (
    import_id   uuid        PRIMARY KEY,
    campaign    text        NOT NULL,
    source      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NULL,
    counts      jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE leads (
    id              bigserial   PRIMARY KEY,
    campaign        text        NOT NULL,
    number          text        NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    region          text        NULL,      -- the number's ISO 3166 region (NL, US, ...)
    line_type       text        NULL,      -- mobile, fixed_line, ... (phonenumbers)
    -- The zone of calling windows and callback times, every zone the number may be in (more than one:
    -- ambiguous), and where the zone came from.
    timezone        text        NOT NULL,
    timezones       text[]      NOT NULL CHECK (cardinality(timezones) >= 1),
    tz_source       text        NOT NULL CHECK (tz_source IN ('number', 'column', 'campaign')),
    name            text        NULL,
    fields          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- pending: waits for next_attempt_at; dialing: claimed by the dialer; connected: talking, no disposition
    -- yet; callback: a scheduled callback owns it; done: closed by a disposition; exhausted: out of attempts;
    -- dnc: closed because the callee asked not to be called; cancelled: removed by an operator.
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'dialing', 'connected', 'callback', 'done', 'exhausted', 'dnc', 'cancelled')),
    priority        integer     NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_outcome    text        NULL,
    last_attempt_at timestamptz NULL,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    disposition     text        NULL,
    import_id       uuid        NULL REFERENCES lead_imports (import_id) ON DELETE SET NULL,
    source_file     text        NULL,
    source_line     integer     NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT leads_campaign_number_key UNIQUE (campaign, number)
);

-- The dialer's question: due leads of a campaign, best first.
CREATE INDEX leads_due_idx ON leads (campaign, priority DESC, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX leads_campaign_status_idx ON leads (campaign, status);
CREATE INDEX leads_number_idx ON leads (number);
CREATE INDEX leads_import_id_idx ON leads (import_id) WHERE import_id IS NOT NULL;

-- Every dial attempt, kept for compliance audits even if its lead is deleted.
CREATE TABLE lead_attempts (
    id                    bigserial        PRIMARY KEY,
    attempt_id            uuid             NOT NULL UNIQUE,
    campaign              text             NOT NULL,
    lead_id               bigint           NULL REFERENCES leads (id) ON DELETE SET NULL,
    number                text             NOT NULL,
    call_id               uuid             NULL,
    mode                  text             NULL,
    started_at            timestamptz      NOT NULL,
    answered_at           timestamptz      NULL,
    ended_at              timestamptz      NULL,
    ring_seconds          double precision NULL CHECK (ring_seconds >= 0),
    outcome               text             NOT NULL CHECK (outcome IN
                              ('human', 'machine', 'busy', 'no_answer', 'failed', 'abandoned')),
    -- Abandoned under the campaign's policy when recorded: outcome 'abandoned', or a person answered and the
    -- agent came later than agent_connect_seconds. The ledger and the 72 h rule read this column.
    abandoned             boolean          NOT NULL,
    agent_guaranteed      boolean          NOT NULL DEFAULT false,
    agent_id              text             NULL,
    connect_delay_seconds double precision NULL CHECK (connect_delay_seconds >= 0),
    talk_seconds          double precision NULL CHECK (talk_seconds >= 0),
    disposition           text             NULL,
    amd_status            text             NULL,
    amd_cause             text             NULL,
    hangup_cause          integer          NULL,
    recorded_at           timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX lead_attempts_lead_id_idx ON lead_attempts (lead_id, started_at);
CREATE INDEX lead_attempts_campaign_started_at_idx ON lead_attempts (campaign, started_at);
-- "Was this number abandoned in the last 72 hours?" at dial time.
CREATE INDEX lead_attempts_abandoned_idx ON lead_attempts (number, started_at) WHERE abandoned;

-- Do-not-call: the global list (campaign NULL) and per-campaign lists. Removal is a soft delete (removed_at),
-- so the history of an entry stays auditable; an entry may expire (expires_at).
CREATE TABLE dnc_entries (
    id             bigserial   PRIMARY KEY,
    campaign       text        NULL,
    number         text        NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    reason         text        NOT NULL DEFAULT '',
    source         text        NOT NULL,            -- cli, api, import:FILE:LINE, disposition:AGENT
    added_at       timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NULL,
    removed_at     timestamptz NULL,
    removed_reason text        NULL
);

CREATE UNIQUE INDEX dnc_entries_global_key ON dnc_entries (number) WHERE campaign IS NULL AND removed_at IS NULL;
CREATE UNIQUE INDEX dnc_entries_campaign_key ON dnc_entries (campaign, number)
    WHERE campaign IS NOT NULL AND removed_at IS NULL;
-- Dial-time check: one number against the global list and the campaign's.
CREATE INDEX dnc_entries_number_idx ON dnc_entries (number) WHERE removed_at IS NULL;

-- Callbacks agreed with a callee (agent disposition) or asked for ("call me"): due_at in UTC, due_local as
-- agreed on the callee's clock. owner_agent NULL: any agent of the campaign may take it.
CREATE TABLE scheduled_callbacks (
    id          bigserial   PRIMARY KEY,
    campaign    text        NOT NULL,
    lead_id     bigint      NULL REFERENCES leads (id) ON DELETE CASCADE,
    number      text        NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    due_at      timestamptz NOT NULL,
    due_local   text        NOT NULL,
    timezone    text        NOT NULL,
    owner_agent text        NULL,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'dialing', 'done', 'failed', 'cancelled')),
    note        text        NOT NULL DEFAULT '',
    created_by  text        NULL,
    attempt_id  uuid        NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX scheduled_callbacks_due_idx ON scheduled_callbacks (campaign, due_at) WHERE status = 'pending';
CREATE INDEX scheduled_callbacks_owner_idx ON scheduled_callbacks (owner_agent, due_at) WHERE status = 'pending';
-- At most one open callback per lead: a new one replaces the old (see callcore.leads.store.schedule_callback).
CREATE UNIQUE INDEX scheduled_callbacks_open_lead_key ON scheduled_callbacks (lead_id)
    WHERE lead_id IS NOT NULL AND status IN ('pending', 'dialing');

COMMENT ON TABLE lead_attempts IS 'every outbound dial attempt (compliance record); written by callcore.leads.store';
COMMENT ON TABLE dnc_entries IS 'do-not-call lists: global (campaign NULL) and per campaign; checked at dial time';
