-- Conversations: the portal shows a message with the others of its thread. A message
-- that replies to (In-Reply-To / References) or was made secure by an earlier sealed
-- message carries that message's conversation id; the first of a conversation keeps
-- NULL and is its own conversation (existing messages too).
ALTER TABLE messages ADD COLUMN conversation_id TEXT;
CREATE INDEX messages_conversation ON messages (conversation_id);
-- Unread counts in the folder list: a recipient's unread messages.
CREATE INDEX message_recipients_unread ON message_recipients (user_id, read_at);
