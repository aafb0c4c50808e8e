-- Migration 6: a draft's APPEND to the server's Drafts folder may have been tried. Only such a
-- draft is looked for in Drafts (by Message-ID) before it is appended; a backfill's new drafts
-- go straight in.
ALTER TABLE drafts ADD COLUMN placing INTEGER NOT NULL DEFAULT 0;
