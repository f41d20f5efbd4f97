-- The hourly blob sweep (issue 16) looks only at messages whose key went since
-- its last pass (a shred's blob delete cut short), instead of listing the whole
-- object store: this index finds them without reading every message row.
CREATE INDEX messages_ended ON messages (ended_at) WHERE ended_at IS NOT NULL;
