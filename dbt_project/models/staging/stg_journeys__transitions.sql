-- The journeys engine's append-only log of what happened to each entry (entered, assigned to an arm, sent,
-- exited, ...). Absent until the first journeys run: then an empty view of the same columns; the measurement
-- build (tag:measurement) rebuilds it after each activation run.
{{ select_or_empty(source('journeys', 'transitions'), {
    'journey': 'varchar', 'version': 'integer', 'customer_id': 'varchar', 'entry_no': 'integer',
    'step': 'integer', 'node_id': 'varchar', 'transition': 'varchar', 'arm': 'varchar',
    'occurred_at': 'timestamp', 'entered_at': 'timestamp', 'run_id': 'varchar'
}) }}
