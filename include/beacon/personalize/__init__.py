"""Personalization: sandboxed message templates (render), product recommendations (recommend) and each
person's best send hour (best_time). Journeys and activation call these; see docs/personalization.md."""
