"""beacon.identity_task.identity_config: the model's config (as dbt gives it) to the resolution rules."""

from __future__ import annotations

import pytest

from beacon.identity_task import CONFIG_KEYS, identity_config

CONFIG = {"match_threshold": "0.8", "max_email_group": "8", "max_phone_group": "8", "require_name_agreement": "yes",
          "probabilistic": "no", "shared_email_needs_more": "yes", "guard_max_matches_per_record": "5.0",
          "guard_max_links_over_expected": "5.0", "guard_max_cluster_size": "50",
          "guard_max_large_cluster_share": "0.005", "guard_max_merge_share": "0.02"}


def test_the_config_dbt_renders_becomes_typed_rules():
    cfg = identity_config(CONFIG)
    assert cfg.match_threshold == 0.8 and cfg.max_email_group == 8
    assert cfg.require_name_agreement and not cfg.probabilistic and cfg.shared_email_needs_more  # flags as words
    assert cfg.guards.max_cluster_size == 50 and cfg.guards.max_merge_share == 0.02


@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_a_missing_key_is_refused_by_name(key):
    with pytest.raises(ValueError, match=f"int_identity_events: config key.*{key}"):
        identity_config({k: v for k, v in CONFIG.items() if k != key})
