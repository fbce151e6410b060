-- Finished journey entries, compacted by the journeys engine to one row each (arm, entry time, sends).
-- Absent until the first journeys run: then an empty view of the same columns; the measurement build
-- (tag:measurement) rebuilds it after each activation run.
{{ select_or_empty(source('journeys', 'finished'), {
    'journey': 'varchar', 'version': 'integer', 'customer_id': 'varchar', 'entry_no': 'integer',
    'arm': 'varchar', 'entered_at': 'timestamp', 'exited_at': 'timestamp', 'exit_reason': 'varchar',
    'sends': 'integer', 'compacted_run': 'varchar'
}) }}
