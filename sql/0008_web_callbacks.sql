-- "Call me now" requests (POST /callbacks, callcore.acd.web_callbacks): the scheduler's own state, so that a
-- restart, a crash or an HA takeover keeps every callback promised to a customer. Written when a request is
-- accepted and on every change of state; the scheduler reloads the open ones at start. (The call events of each
-- request and attempt are still written by the event writer; this table is not an event log.)
CREATE TABLE web_callbacks (
    id             uuid        PRIMARY KEY,        -- the callback id the API returned (its events' call id)
    number         text        NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    queue          text        NOT NULL,
    context        jsonb       NOT NULL DEFAULT '{}'::jsonb,   -- page, product, note: read out to the agent
    requested_by   text        NOT NULL DEFAULT '',            -- the API token's name
    -- waiting: in line (or before not_before); dialing: an attempt rings; connected: the callee answered and
    -- was put through; done, failed (attempts used up), cancelled, expired (not_after passed): over.
    status         text        NOT NULL CHECK (status IN
                       ('waiting', 'dialing', 'connected', 'done', 'failed', 'cancelled', 'expired')),
    created_at     timestamptz NOT NULL,           -- accepted
    queued_at      timestamptz NOT NULL,           -- its place in line: when it joined (created_at or not_before)
    promised_at    timestamptz NULL,               -- the time the API promised (NULL: not recorded yet)
    estimated_at   timestamptz NOT NULL,           -- the scheduler's own estimate when it was accepted
    not_before     timestamptz NULL,
    not_after      timestamptz NULL,
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    attempt_call_id uuid        NULL,               -- the call id of the current or last attempt
    dialing_since  timestamptz NULL,               -- when the current attempt started (status dialing)
    retry_at       timestamptz NULL,               -- after an unanswered attempt: not dialled again before then
    last_outcome   text        NULL,               -- answered, no_answer, interrupted (a restart cut it short)
    updated_at     timestamptz NOT NULL,
    finished_at    timestamptz NULL
);

-- The scheduler's start-up question: the open requests, in their order in line.
CREATE INDEX web_callbacks_open_idx ON web_callbacks (queued_at) WHERE status IN ('waiting', 'dialing', 'connected');
-- Retention: finished requests by age.
CREATE INDEX web_callbacks_finished_at_idx ON web_callbacks (finished_at) WHERE finished_at IS NOT NULL;

COMMENT ON TABLE web_callbacks IS 'pending and finished "call me now" callbacks: scheduler state (callcore.acd.web_callbacks)';
