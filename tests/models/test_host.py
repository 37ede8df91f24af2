"""Inside an MMRec checkout the models subclass MMRec's own GeneralRecommender."""

import subprocess
import sys
import textwrap


def _fake_checkout(root):
    """The two files by which models/base.py recognises an MMRec ``src`` folder (no MMRec code)."""
    (root / "common").mkdir()
    (root / "utils").mkdir()
    (root / "common" / "__init__.py").write_text("")
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "quick_start.py").write_text("")
    (root / "common" / "abstract_recommender.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        class GeneralRecommender(nn.Module):
            marker = "host"
    """))


def _base_of(model, cwd, env_extra=None):
    code = f"import mmrec_ld4mrec.models.{model.lower()} as m; print(m.{model}.__mro__[1].__module__)"
    env = {"PATH": "/usr/bin:/bin", **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def test_inside_mmrec_the_base_is_the_hosts(tmp_path):
    _fake_checkout(tmp_path)
    assert _base_of("LD4MRec", tmp_path) == "common.abstract_recommender"
    assert _base_of("Pop", tmp_path) == "common.abstract_recommender"


def test_outside_mmrec_the_base_is_the_standalone_one(tmp_path):
    assert _base_of("LD4MRec", tmp_path) == "mmrec_ld4mrec.models.base"
    (tmp_path / "common").mkdir()  # a 'common' package that is not MMRec's
    (tmp_path / "common" / "__init__.py").write_text("")
    (tmp_path / "common" / "abstract_recommender.py").write_text("class GeneralRecommender: pass\n")
    assert _base_of("LD4MRec", tmp_path) == "mmrec_ld4mrec.models.base"
