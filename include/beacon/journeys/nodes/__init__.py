"""The built-in node types, one module each (see `beacon.journeys.nodes.base` for the registry)."""

# isort: off
# Registered in this order (the order of the JSON Schema and of the "known:" lists).
from beacon.journeys.nodes import send, wait, wait_for, branch, split, actions, exit  # noqa: F401
# isort: on
from beacon.journeys.nodes.actions import Action, ActionsNode
from beacon.journeys.nodes.base import NodeType, handler, models, on_change, register, types, unregister
from beacon.journeys.nodes.branch import BranchNode, Condition, Rule
from beacon.journeys.nodes.exit import ExitNode
from beacon.journeys.nodes.send import QuietHours, SendNode
from beacon.journeys.nodes.split import Arm, SplitNode
from beacon.journeys.nodes.wait import WaitNode
from beacon.journeys.nodes.wait_for import WaitFor

__all__ = ["Action", "ActionsNode", "Arm", "BranchNode", "Condition", "ExitNode", "NodeType", "QuietHours", "Rule",
           "SendNode", "SplitNode", "WaitFor", "WaitNode", "handler", "models", "on_change", "register", "types",
           "unregister"]
