-- Rule versions are managed with `riskgate rules create|activate|retire`, which log in as the
-- app like every other admin command. A version's weights and thresholds never change once
-- created (stored decisions name it), so the app may insert rows and change only their status.
GRANT INSERT, UPDATE (status) ON rule_versions TO riskgate_app;
