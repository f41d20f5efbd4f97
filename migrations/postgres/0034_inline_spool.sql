-- A small message's sealed bytes kept in its spool row instead of a file in
-- spool/in (NULL: the message is in its file). Sealed under the row's own
-- data key, like the file would be: never clear text.
ALTER TABLE spool ADD COLUMN data BYTEA;
