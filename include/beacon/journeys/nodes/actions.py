"""`actions`: change the person's lead points, lifecycle stage or static lists, or call a sales-task or webhook
destination (governed and exactly once, like a send)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from beacon.journeys.fields import NodeId, Strict
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import lit, move_sql


class Action(Strict):
    lead_points: int | None = None
    lifecycle_stage: str | None = None
    list_add: str | None = None
    list_remove: str | None = None
    sales_task: str | None = None  # a destination (webhook or CRM API channel) that receives the task
    webhook: str | None = None  # a destination that receives the call

    @model_validator(mode="after")
    def _one(self) -> Action:
        kinds = [k for k, v in self.__dict__.items() if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"an action needs exactly one of {list(type(self).model_fields)} (got {kinds})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.__dict__.items() if v is not None)


class ActionsNode(Strict):
    id: NodeId
    type: Literal["actions"]
    actions: list[Action] = Field(min_length=1)
    next: NodeId


class Actions(NodeType):
    type, model = "actions", ActionsNode

    def references(self, node: ActionsNode) -> list[tuple[str, str | None]]:
        return [("channel", a.sales_task) for a in node.actions] + [("channel", a.webhook) for a in node.actions]

    def step(self, run, node: ActionsNode) -> int:
        from beacon.journeys.delivery import deliver

        con = run.con
        con.execute("CREATE OR REPLACE TEMP TABLE _act AS SELECT * FROM _at")
        for i, a in enumerate(node.actions):
            if a.sales_task or a.webhook:
                # Through a destination (governed and exactly once like a send); not acknowledged: retried.
                done = deliver(run, f"{node.id}_{i}", a.sales_task or a.webhook, "_act",
                               f", {lit(a.kind)} AS journey_action")
                con.execute(f"""CREATE OR REPLACE TEMP TABLE _act AS SELECT * FROM _act x
                    WHERE (customer_id, entry_no) IN (SELECT customer_id, entry_no FROM {done.sent}
                                                      UNION ALL SELECT customer_id, entry_no FROM {done.skipped})""")
        local = [(i, a) for i, a in enumerate(node.actions) if not (a.sales_task or a.webhook)]
        if local:
            values = ", ".join(f"({i}, {lit(a.kind)}, {lit(str(getattr(a, a.kind)))})" for i, a in local)
            con.execute(f"""INSERT INTO journeys.actions
                SELECT md5(concat_ws('|', $j, x.customer_id, x.entry_no, $n, v.i)), $j, x.customer_id, x.entry_no, $n,
                    v.kind, v.value::VARCHAR, $t::TIMESTAMP, $run
                FROM _act x, (VALUES {values}) v(i, kind, value)
                WHERE md5(concat_ws('|', $j, x.customer_id, x.entry_no, $n, v.i)) NOT IN
                    (SELECT action_id FROM journeys.actions WHERE journey = $j)""",
                        {"j": run.j.name, "n": node.id, "t": run.T, "run": run.run_id})
        return run.emit(move_sql(lit(node.next), src="_act a"))


register(Actions())
