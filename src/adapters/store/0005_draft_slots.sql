-- Migration 5: the call times a draft offers, as written in it (JSON array of strings), so the
-- approval page can show them beside the text without composing the draft again.
ALTER TABLE drafts ADD COLUMN proposed_slots TEXT NOT NULL DEFAULT '[]';
