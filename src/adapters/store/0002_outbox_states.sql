-- Migration 2: the outbox state machine and approval as a recorded event.
--
-- A draft in the outbox moves approved -> sending -> sent | failed, back to approved for a retry,
-- or to unknown when the process died mid-send and nobody can tell whether the server took it.
-- The state lives in drafts.status alone; the outbox row keeps the retry bookkeeping.
-- Runs with foreign keys off (SQLite's recipe for changing a CHECK: rebuild the table), checked
-- before commit.

CREATE TABLE drafts_new (
    id          INTEGER PRIMARY KEY,
    message     INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    in_reply_to TEXT,
    message_id  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    category    TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'sending', 'sent', 'failed', 'unknown',
                                  'rejected')),
    body        TEXT NOT NULL,
    raw         BLOB NOT NULL,
    original    BLOB NOT NULL,
    notes       TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    folder_name TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
INSERT INTO drafts_new (id, message, in_reply_to, message_id, subject, recipient, category, status,
                        body, raw, original, notes, version, folder_name, created_at, updated_at)
SELECT id, message, in_reply_to, message_id, subject, recipient, category, status,
       body, raw, original, notes, version, folder_name, created_at, updated_at
FROM drafts;
DROP TABLE drafts;
ALTER TABLE drafts_new RENAME TO drafts;
CREATE INDEX drafts_by_status ON drafts (status);

-- The rep's approval of one version of a draft: when, through which path, and the exact bytes
-- approved. A send claim compares the outbox's bytes with these.
CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY,
    draft       INTEGER NOT NULL UNIQUE REFERENCES drafts (id),
    version     INTEGER NOT NULL,
    raw         BLOB NOT NULL,
    via         TEXT NOT NULL CHECK (via IN ('cli', 'web', 'client-sent')),
    approved_at TEXT NOT NULL
);
-- Every outbox row so far was queued by `pushback drafts approve`.
INSERT INTO approvals (draft, version, raw, via, approved_at)
SELECT o.draft, d.version, o.raw, 'cli', o.queued_at FROM outbox o JOIN drafts d ON d.id = o.draft;

-- When the next attempt is due; NULL once there is nothing left to attempt.
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT;
UPDATE outbox SET next_attempt_at = COALESCE(last_attempt_at, queued_at) WHERE sent_at IS NULL;

-- Only approve() makes outbox rows, and only for the version it approved.
CREATE TRIGGER outbox_requires_approval BEFORE INSERT ON outbox
WHEN NOT EXISTS (SELECT 1 FROM approvals a JOIN drafts d ON d.id = a.draft
                 WHERE a.draft = NEW.draft AND a.version = d.version AND a.raw = NEW.raw)
BEGIN
    SELECT RAISE(ABORT, 'an outbox row needs an approval of this draft version');
END;
