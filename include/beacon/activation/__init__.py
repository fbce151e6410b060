"""Activation: governance before every send, destinations behind one interface, a delivery log."""
