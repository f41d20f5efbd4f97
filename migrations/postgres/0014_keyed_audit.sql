-- A delivery error keeps only our words and the reply codes from now on (the
-- remote text often names the recipient); drop what older versions stored.
UPDATE outbound SET last_error = NULL;
