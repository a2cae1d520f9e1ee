-- At most one reply is being written in a conversation at a time. Two sends that
-- race into one conversation both try to insert a `generating` reply; this index
-- lets exactly one of them commit, and the other stores nothing.
--
-- Replies a crashed server left `generating` would block the index; Wick marks
-- them interrupted at every start-up anyway, so do it here first.
UPDATE messages SET state = 'interrupted' WHERE state = 'generating';

CREATE UNIQUE INDEX messages_one_generating ON messages (conversation_id) WHERE state = 'generating';
