-- Migration 4: follow-up sequences, deadline reminders and the buyer's replies.
--
-- A thread is anchored on the buyer's original message. Its first reply is draft number 0; each
-- follow-up is another draft on the same message with the next number, so "one draft per message"
-- becomes "one draft per message and step". Runs with foreign keys off (the table rebuild), checked
-- before commit. The outbox trigger reads `drafts`, so it is dropped for the rebuild and restored.

DROP TRIGGER outbox_requires_approval;

CREATE TABLE drafts_new (
    id          INTEGER PRIMARY KEY,
    message     INTEGER NOT NULL REFERENCES messages (id),
    follow_up   INTEGER NOT NULL DEFAULT 0,  -- 0: the pushback itself; n: the n-th follow-up
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
    original    BLOB NOT NULL,   -- the message replied to: the buyer's, or our previous one
    notes       TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    folder_name TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    placed_uid  INTEGER,
    UNIQUE (message, follow_up)
);
INSERT INTO drafts_new (id, message, in_reply_to, message_id, subject, recipient, category, status,
                        body, raw, original, notes, version, folder_name, created_at, updated_at,
                        placed_uid)
SELECT id, message, in_reply_to, message_id, subject, recipient, category, status,
       body, raw, original, notes, version, folder_name, created_at, updated_at, placed_uid
FROM drafts;
DROP TABLE drafts;
ALTER TABLE drafts_new RENAME TO drafts;
CREATE INDEX drafts_by_status ON drafts (status);

CREATE TRIGGER outbox_requires_approval BEFORE INSERT ON outbox
WHEN NOT EXISTS (SELECT 1 FROM approvals a JOIN drafts d ON d.id = a.draft
                 WHERE a.draft = NEW.draft AND a.version = d.version AND a.raw = NEW.raw)
BEGIN
    SELECT RAISE(ABORT, 'an outbox row needs an approval of this draft version');
END;

-- Migration 1's placeholder was never written to.
DROP TABLE reminders;

-- What pushback will remind the rep of, and when. `number` tells reminders of one kind on one
-- thread apart: the follow-up's place in the sequence, or the deadline's position among the
-- message's extracted deadlines. UNIQUE makes planning idempotent: planning twice adds nothing.
--
-- status: scheduled (due_at set) -> firing (claimed, being delivered) -> fired -> done;
--         confirm (a past, ambiguous or undated deadline waits for the rep) -> scheduled | done;
--         scheduled -> cancelled (the buyer answered; the thread is over).
CREATE TABLE reminders (
    id          INTEGER PRIMARY KEY,
    message     INTEGER NOT NULL REFERENCES messages (id),
    kind        TEXT NOT NULL CHECK (kind IN ('follow_up', 'questions', 'submission', 'pre_bid',
                                              'intent_to_bid', 'other')),
    number      INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('scheduled', 'confirm', 'firing', 'fired', 'done',
                                                'cancelled')),
    due_at      TEXT,           -- NULL only while the rep has to confirm a date
    deadline_at TEXT,           -- the deadline itself, for deadline reminders with a date
    about       TEXT NOT NULL,  -- one line for the rep: what is due, or what needs confirming
    after_draft INTEGER REFERENCES drafts (id),  -- follow-ups: the sent message we follow up on
    prepared_draft INTEGER REFERENCES drafts (id),  -- follow-ups: the draft prepared on firing
    revision    INTEGER NOT NULL DEFAULT 0,  -- bumped on every change (calendar SEQUENCE)
    fired_at    TEXT,
    closed_at   TEXT,           -- done or cancelled
    closed_why  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK (status = 'confirm' OR due_at IS NOT NULL),
    UNIQUE (message, kind, number)
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE status = 'scheduled';

-- The buyer's answers in a pushback thread, as classified (for the rep, and to learn which
-- wording gets calls).
CREATE TABLE replies (
    message     INTEGER PRIMARY KEY REFERENCES messages (id),  -- the reply itself
    thread      INTEGER NOT NULL REFERENCES messages (id),     -- the original it answers
    kind        TEXT NOT NULL CHECK (kind IN ('agreed_to_call', 'insisted_on_process', 'declined',
                                              'out_of_office', 'other')),
    returns_on  TEXT,           -- out of office: the stated return date
    reasons     TEXT NOT NULL,  -- JSON array of {signal, weight, matched}
    received_at TEXT NOT NULL
);
CREATE INDEX replies_by_thread ON replies (thread);


-- The rep's busy times (from their calendar files, URLs or CalDAV), refreshed by the daemon and
-- read when call slots are proposed in a draft. Replaced wholesale on each refresh.
CREATE TABLE busy_times (
    starts_at TEXT NOT NULL,
    ends_at   TEXT NOT NULL
);
CREATE TABLE busy_refresh (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    refreshed_at TEXT NOT NULL
);
