"""Measurement: did it work? Assignments, outcomes, lift with intervals, ROI, uplift and the campaign report.

Modules: `stats` (the one statistics module: lift, CUPED, SRM, sequential intervals, sizing, ROI),
`outcomes` (per-exposure outcomes within a window, as the dbt marts compute them), `simulate` (worlds with
known effects for coverage checks), `uplift` (T- and X-learner, Qini), `warehouse` (assignments, global
control group, results in the `measurement` schema), `report` (the campaign report).
"""
