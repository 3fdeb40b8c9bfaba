-- Skein tracker schema, version 8 (PostgreSQL): incoming webhooks.
-- Keep in step with ../sqlite/0008_hooks.sql.

-- An incoming webhook is an app whose token is the secret in its URL
-- (POST /hooks/{id}/{secret}) and whose posts all go where it was made to
-- post: a user, #group or dept:/path, as POST /v1/messages names them.
-- Its scopes are "hook" alone, so its secret opens no /v1 route.
ALTER TABLE apps ADD COLUMN hook_to TEXT;
