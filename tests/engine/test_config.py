"""The engine's config: an option that was removed is refused as removed, naming the key and
where the finding is written down."""

from __future__ import annotations

import pytest

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.errors import ConfigError


def test_a_removed_option_is_refused_as_removed(data_path):
    with pytest.raises(ConfigError, match="'ema_decay'.*removed.*docs/findings.md") as caught:
        Config("LD4MRec", "synthetic", {"data_path": f"{data_path}/", "ema_decay": 0.99})
    assert caught.value.key == "ema_decay"
