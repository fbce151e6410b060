-- Activation's decision log: one row per member and sync decision (an add sent or failed, an update, a remove,
-- a member held out, suppressed or invalid) with the warehouse time. Absent before the first activation run:
-- then an empty view of the same columns; the measurement build (tag:measurement) rebuilds it after each run.
{{ select_or_empty(source('activation', 'sync_log'), {
    'run_id': 'varchar', 'audience': 'varchar', 'destination': 'varchar', 'channel': 'varchar',
    'customer_id': 'varchar', 'operation': 'varchar', 'status': 'varchar', 'reason': 'varchar',
    'as_of': 'timestamp', 'logged_at': 'timestamp'
}) }}
