"""install / uninstall on a fake MMRec folder layout (no MMRec code)."""

import hashlib
import re
from pathlib import Path

import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.mmrec.overlay import CHECKOUT_MARKERS, MANIFEST, install, planned_files, uninstall

PROJECT = Path(__file__).resolve().parents[2]


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture
def checkout(tmp_path) -> Path:
    root = tmp_path / "MMRec"
    for marker in CHECKOUT_MARKERS:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("# upstream file\n")
    (root / "src" / "configs" / "dataset" / "microlens.yaml").parent.mkdir(parents=True)
    (root / "src" / "configs" / "dataset" / "microlens.yaml").write_text("inter_file_name: 'microlens.inter'\n")
    (root / "data").mkdir()
    (root / "data" / "README.md").write_text("upstream\n")
    return root


def test_install_adds_files_only_and_uninstall_restores(checkout):
    before = _snapshot(checkout)
    report = install(checkout)
    after = _snapshot(checkout)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing of the checkout changed
    added = set(after) - set(before)
    assert {"src/models/ld4mrec.py", "src/models/pop.py", "src/utils/__init__.py", "src/configs/model/LD4MRec.yaml",
            "src/configs/dataset/synthetic.yaml", "data/synthetic/synthetic.inter", MANIFEST} <= added
    assert "src/configs/dataset/microlens.yaml" not in report["written"]  # MMRec's own is kept
    assert install(checkout)["written"] == []  # idempotent
    assert _snapshot(checkout) == after
    uninstall(checkout)
    assert _snapshot(checkout) == before
    assert not (checkout / "data" / "synthetic").exists() and not (checkout / "src" / "models" / "__pycache__").exists()


def test_a_users_file_stops_install_and_nothing_changes(checkout):
    user_yaml = checkout / "src" / "configs" / "model" / "LD4MRec.yaml"
    user_yaml.parent.mkdir(parents=True)
    user_yaml.write_text("my: own\n")
    before = _snapshot(checkout)
    with pytest.raises(UserInputError, match="would overwrite.*LD4MRec.yaml.*nothing was changed"):
        install(checkout)
    assert _snapshot(checkout) == before


def test_not_a_checkout_is_refused(tmp_path, capsys):
    assert main(["install", "--mmrec-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an MMRec checkout" in err and "src/main.py" in err
    assert list(tmp_path.iterdir()) == []


def test_uninstall_keeps_files_the_user_changed(checkout):
    before = _snapshot(checkout)
    install(checkout)
    edited = checkout / "src" / "configs" / "model" / "LD4MRec.yaml"
    edited.write_text(edited.read_text() + "\n# my tweak\n")
    report = uninstall(checkout)
    assert "src/configs/model/LD4MRec.yaml" in report["kept"]
    assert edited.is_file() and "my tweak" in edited.read_text()
    assert (checkout / MANIFEST).is_file()  # the kept file stays tracked for a later uninstall
    edited.unlink()
    uninstall(checkout)
    assert _snapshot(checkout) == before


def test_reinstall_after_an_upgrade_replaces_only_our_files(checkout):
    install(checkout)
    ours = checkout / "src" / "models" / "pop.py"
    ours.write_text("# an older version that install wrote\n")
    manifest = (checkout / MANIFEST).read_text()
    digest = hashlib.sha256(ours.read_bytes()).hexdigest()
    (checkout / MANIFEST).write_text(re.sub(r'("src/models/pop.py": ")[0-9a-f]+', rf"\g<1>{digest}", manifest))
    assert "src/models/pop.py" in install(checkout)["written"]


def test_patches_readme_lists_every_overlay_file():
    readme = (PROJECT / "patches" / "README.md").read_text()
    for f in planned_files():
        assert f.target in readme, f.target


def test_setup_cfg_ships_every_config_and_overlay_file():
    """A non-editable install finds configs/ and patches/ under share/; none may be missing."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(PROJECT / "setup.cfg")
    shipped = {line.strip() for _, value in parser.items("options.data_files") for line in value.splitlines()
               if line.strip()}
    wanted = {p.relative_to(PROJECT).as_posix() for folder in ("configs", "patches")
              for p in (PROJECT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - shipped == set()


def test_every_model_of_the_project_has_its_overlay_module_and_yaml():
    """MMRec finds a model NAME as models.<name lower-cased>.NAME, configured by NAME.yaml."""
    from mmrec_ld4mrec.models import MODELS

    targets = {f.target: f.content.decode() for f in planned_files() if f.target.endswith((".py", ".yaml"))}
    for name in MODELS:
        module = targets.get(f"src/models/{name.lower()}.py")
        assert module is not None, name
        assert re.search(rf"^from mmrec_ld4mrec\.models\.{MODELS[name]} import {name}\b", module, re.M), name
        assert f"src/configs/model/{name}.yaml" in targets, name


def test_uninstall_never_removes_a_file_install_does_not_write_whatever_the_manifest_says(checkout):
    """A hand-edited manifest listing MMRec's own src/main.py with its real checksum: uninstall
    keeps it (and says so), and removes what install wrote."""
    import json

    install(checkout)
    manifest = json.loads((checkout / MANIFEST).read_text())
    main_py = checkout / "src" / "main.py"
    manifest["files"]["src/main.py"] = hashlib.sha256(main_py.read_bytes()).hexdigest()
    (checkout / MANIFEST).write_text(json.dumps(manifest))
    report = uninstall(checkout)
    assert main_py.read_text() == "# upstream file\n"
    assert "src/main.py" in report["kept"] and "src/models/ld4mrec.py" in report["removed"]
