-- Skein tracker schema, version 7 (PostgreSQL): mailbox items from apps.
-- Keep in step with ../sqlite/0007_app_mail.sql.

-- An item the tracker made from an app's post (POST /v1/messages) names
-- the app here; its from_user_id is then the recipient's own, and fetch
-- names the sender app:NAME. Each app counts as a sender of its own
-- against the share of a mailbox one sender may fill.
ALTER TABLE mailbox ADD COLUMN from_app TEXT;
