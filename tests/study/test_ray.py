"""``reproduce --ray``: the sweep's runs as tasks on a real Ray cluster started on this machine
(``ray start --head`` and two worker nodes of one CPU each; nothing mocked), the registry on
the driver."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.study.ray_node import run_on_node
from mmrec_ld4mrec.study.ray_runs import sweep_id
from mmrec_ld4mrec.study.registry import Registry

from .ray_cluster import Cluster, local_cluster

ROOT = Path(__file__).resolve().parents[2]
SMALL = "{embedding_size: 64, hidden_size: 16, svd_rank: 16}"
# one cluster for the module, on one test worker: the tests share it one after another
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    with local_cluster(workers=2, cpus_per_worker=1) as running:
        yield running


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmrec_ld4mrec.cli", *args]


def _records(results: Path) -> dict[str, dict]:
    with Registry(results, readonly=True) as registry:
        return {r["key"]: r for r in registry.records()}


def _what_a_run_measured(record: dict) -> dict:
    """Everything of a record the run computed, without timings and where it ran."""
    result = record["result"]
    history = [{k: v for k, v in epoch.items() if "seconds" not in k and "time" not in k}
               for epoch in result["history"]]
    kept = {k: v for k, v in result.items() if k not in ("config", "history", "inference_seconds", "peak_rss_mb",
                                                         "peak_gpu_mb", "train_seconds_per_epoch",
                                                         "resumed_from_epoch")}
    config = {k: v for k, v in result["config"].items() if k != "data_path"}  # a node's copy of shipped data
    return {"status": record["status"], "spec": record["spec"], "history": history, "config": config, **kept}


@pytest.mark.slow
def test_tiny_on_a_ray_cluster_gives_the_runs_and_metrics_of_a_local_sweep(cluster, tmp_path, data_path):
    tiny = str(ROOT / "experiments" / "tiny.yaml")
    local, remote = tmp_path / "local", tmp_path / "ray"
    # one torch thread per run, as each Ray task asks for one CPU
    assert main(["reproduce", tiny, "--results", str(local), "--data-path", str(data_path),
                 "--jobs", str(os.cpu_count())]) == 0
    swept = subprocess.run(_cli("reproduce", tiny, "--results", str(remote), "--data-path", str(data_path),
                                "--ray", cluster.address), capture_output=True, text=True, timeout=600)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "13 to run as Ray tasks (3 node(s), 2 CPUs, 0 GPUs), each with 1 CPU(s)" in swept.stderr
    assert "synthetic: shipped to the nodes through Ray's object store" in swept.stderr

    here, there = _records(local), _records(remote)
    assert sorted(here) == sorted(there) and len(here) == 13
    for key in here:
        assert _what_a_run_measured(there[key]) == _what_a_run_measured(here[key]), here[key]["label"]
        assert there[key]["runner"] == "ray" and there[key]["attempts"] == 1
        assert there[key]["environment"]["torch_threads"] == 1
        assert (remote / there[key]["log"]).read_text().count("epoch ") >= 1  # the node's log came back
    for table in sorted((local / "report").glob("*.csv")):
        if table.name != "table5-cost.csv":  # seconds and memory differ from run to run
            assert (remote / "report" / table.name).read_text() == table.read_text(), table.name
    assert "13 of 13 finished" in (remote / "report.md").read_text()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _runs_of(sweep: str) -> list[int]:
    """The processes running a run of ``sweep`` on a node: they run in the node's folder for the sweep."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mmrec_ld4mrec.study.run_worker" in cmdline and f"mmrec-ld4mrec-ray/runs/{sweep}".encode() in cmdline:
                found.append(int(entry.name))
    return found


def _ray_workers_running_a_run(sweep: str) -> list[int]:
    """The Ray worker processes whose task runs a run of ``sweep``: the runs' parents."""
    workers = []
    for pid in _runs_of(sweep):
        try:
            parent = _parent(pid)
            if Path(f"/proc/{parent}/cmdline").read_bytes().startswith(b"ray::"):
                workers.append(parent)
        except (OSError, ValueError, IndexError):
            pass
    return workers


def _scratch(cluster: Cluster) -> Path:
    return cluster.tmp / "mmrec-ld4mrec-ray"  # ray_node.scratch_root() on the cluster's nodes


def _wait_for_a_snapshot(cluster: Cluster, results: Path) -> Path:
    """The nodes' snapshot folder of the sweep into ``results``, once its run saved its state."""
    snapshots = _scratch(cluster) / "snapshots" / sweep_id(results)
    deadline = time.time() + 120
    while time.time() < deadline and not list(snapshots.glob("*.snapshot")):
        time.sleep(0.1)
    return snapshots


def _long_run(tmp_path: Path, seeds: str, epochs: int) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: long\ndatasets: [synthetic]\nseeds: [{seeds}]\n"
                    f"base: {{epochs: {epochs}, stopping_step: {epochs}}}\nmodels:\n  LD4MRec: {SMALL}\n")
    return path


@pytest.mark.slow
def test_a_run_whose_worker_process_is_killed_is_run_again_and_recorded_once(cluster, tmp_path, data_path):
    exp = _long_run(tmp_path, "1", epochs=150)
    results = tmp_path / "r"
    sweep = subprocess.Popen(_cli("reproduce", str(exp), "--results", str(results), "--data-path", str(data_path),
                                  "--ray", cluster.address, "--snapshot-every", "0.2"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    snapshots = _wait_for_a_snapshot(cluster, results)  # the run is under way: it saved its state at least once
    [worker] = _ray_workers_running_a_run(sweep_id(results))
    [first] = _runs_of(sweep_id(results))
    os.kill(worker, signal.SIGKILL)  # Ray's worker process: the run's process ends with it
    deadline = time.time() + 60
    while time.time() < deadline and [p for p in _runs_of(sweep_id(results)) if p != first] == []:
        time.sleep(0.1)
    time.sleep(1)
    [second] = _runs_of(sweep_id(results))
    os.kill(second, signal.SIGKILL)  # and then the second attempt's own process, as the kernel's OOM killer would
    output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output

    [record] = _records(results).values()
    assert record["status"] == "done" and record["attempts"] == 3, output
    assert output.count("lost: LD4MRec@synthetic seed 1") == 2 and "attempt 3 of 3" in output
    assert output.count("done: LD4MRec@synthetic seed 1") == 1
    log = (results / record["log"]).read_text()
    assert log.startswith("attempt 1 of 3 lost: WorkerCrashedError")
    assert "attempt 2 of 3 lost: the run's process ended with code -9 and no result" in log
    assert "attempt 3 of 3 on node" in log
    assert "resuming from" in log and record["result"]["resumed_from_epoch"] >= 1  # from the lost ones' snapshot
    assert not list(snapshots.glob("*.snapshot"))  # a finished run leaves none
    assert not list((_scratch(cluster) / "runs" / sweep_id(results)).rglob("*"))  # nor its files, lost ones' included

    # the run that was killed twice and resumed scores as one never stopped
    whole = tmp_path / "whole"
    assert main(["reproduce", str(exp), "--results", str(whole), "--data-path", str(data_path),
                 "--snapshot-every", "0"]) == 0
    [never_stopped] = _records(whole).values()
    assert _what_a_run_measured(record) == _what_a_run_measured(never_stopped)


@pytest.mark.slow
def test_a_run_lost_three_times_is_recorded_failed_once_with_why(cluster, tmp_path, data_path):
    exp = _long_run(tmp_path, "1", epochs=150)
    results = tmp_path / "r"
    sweep = subprocess.Popen(_cli("reproduce", str(exp), "--results", str(results), "--data-path", str(data_path),
                                  "--ray", cluster.address), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: set[int] = set()
    deadline = time.time() + 120
    while sweep.poll() is None and time.time() < deadline:
        for pid in set(_runs_of(sweep_id(results))) - killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    output, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 1 and len(killed) == 3, output
    [record] = _records(results).values()
    assert record["status"] == "failed" and record["attempts"] == 3
    assert record["error"].startswith("lost 3 times: the run's process ended with code -9 and no result; ")
    assert output.count("failed: LD4MRec@synthetic seed 1") == 1 and output.count("lost: ") == 2


@pytest.mark.slow
def test_a_run_whose_node_is_lost_runs_again_on_another_node(tmp_path, data_path):
    exp = _long_run(tmp_path, "1", epochs=150)
    results = tmp_path / "r"
    with local_cluster(workers=2, cpus_per_worker=1) as own:  # its own: one node goes down
        sweep = subprocess.Popen(_cli("reproduce", str(exp), "--results", str(results), "--data-path",
                                      str(data_path), "--ray", own.address, "--snapshot-every", "0.2"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for_a_snapshot(own, results)
        [run] = _runs_of(sweep_id(results))
        node = os.getpgid(_parent(_parent(run)))  # the run's worker's raylet: its node's `ray start` group
        os.killpg(node, signal.SIGKILL)
        output, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, output
    [record] = _records(results).values()
    assert record["status"] == "done" and record["attempts"] == 2, output
    assert output.count("lost: LD4MRec@synthetic seed 1 (NodeDiedError") == 1, output
    assert output.count("done: LD4MRec@synthetic seed 1") == 1


@pytest.mark.slow
def test_a_driver_stopped_with_ctrl_c_and_restarted_repeats_no_finished_run(cluster, tmp_path, data_path):
    exp = _long_run(tmp_path, "1, 2, 3, 4", epochs=40)
    results = tmp_path / "r"
    cmd = _cli("reproduce", str(exp), "--results", str(results), "--data-path", str(data_path), "--ray",
               cluster.address)
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    finished: dict[str, dict] = {}
    while time.time() < deadline and not finished:
        time.sleep(0.2)
        if (results / "registry.lmdb" / "data.mdb").exists():
            finished = _records(results)
    sweep.send_signal(signal.SIGINT)  # Ctrl-C reaches the driver; the nodes' processes are not in its group
    output, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, output
    before = _records(results)
    assert 1 <= len(before) < 4 and all(r["status"] == "done" for r in before.values()), output
    logs_before = {k: (results / r["log"]).stat().st_mtime_ns for k, r in before.items()}
    deadline = time.time() + 30
    while _ray_workers_running_a_run(sweep_id(results)) and time.time() < deadline:
        time.sleep(0.2)
    assert not _ray_workers_running_a_run(sweep_id(results))  # the runs in flight were cancelled with the driver

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"4 runs, {len(before)} already in" in again.stderr
    after = _records(results)
    assert len(after) == 4 and all(r["status"] == "done" for r in after.values())
    for key, record in before.items():  # untouched: same record, same log, not run again
        assert after[key] == record
        assert (results / record["log"]).stat().st_mtime_ns == logs_before[key]
        assert f"done: {record['label']}\n" not in again.stderr
    assert again.stderr.count("done: ") == 4 - len(before)


def test_what_a_node_lacks_fails_the_run_naming_the_path(tmp_path):
    payload = {"model": "LD4MRec", "dataset": "synthetic", "config": {"seed": 1, "data_path": f"{tmp_path}/"},
               "threads": 1, "mmrec_root": None, "snapshot": None, "snapshot_every": 0}
    reply = run_on_node(payload, "k", "sweep", None, None)
    assert reply["outcome"]["status"] == "failed"
    assert f"{tmp_path}/synthetic: the dataset folder is not on node" in reply["outcome"]["error"]
    assert "--data-path" in reply["outcome"]["error"]


def test_a_node_of_another_version_refuses_the_run_before_training(tmp_path):
    from mmrec_ld4mrec.study.registry import code_version
    from mmrec_ld4mrec.study.run_worker import other_version

    here = code_version()
    assert other_version(here, here) is None and other_version(None, here) is None
    assert "install the same version on every node" in other_version({**here, "package": "0.0.1"}, here)
    spec, out = tmp_path / "spec.json", tmp_path / "out.json"
    spec.write_text(json.dumps({"model": "LD4MRec", "dataset": "synthetic", "config": {"seed": 1, "data_path": "/nowhere/"},
                                "threads": 1, "code": {**here, "package": "0.0.1"}}))
    done = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.study.run_worker", str(spec), str(out)],
                          capture_output=True, text=True, timeout=120)
    outcome = json.loads(out.read_text())
    assert done.returncode == 1 and outcome["status"] == "failed" and "result" not in outcome
    assert f"this node runs mmrec-ld4mrec {here['package']}" in outcome["error"] and "the sweep 0.0.1" in outcome["error"]


def test_a_shipped_dataset_packs_to_the_same_bytes_and_unpacks_whole(tmp_path, data_path, monkeypatch):
    from mmrec_ld4mrec.study.ray_node import unpack_dataset
    from mmrec_ld4mrec.study.ray_runs import pack_folder

    folder = data_path / "synthetic"
    first = pack_folder(folder)
    for path in folder.iterdir():
        os.utime(path, (0, 12345))
    assert pack_folder(folder) == first  # times and owners left out: same content, same digest
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    copy = Path(unpack_dataset(first, "d1")) / "synthetic"
    assert copy == tmp_path / "mmrec-ld4mrec-ray" / "data" / "d1" / "synthetic"
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert all((copy / p.name).read_bytes() == p.read_bytes() for p in folder.iterdir() if p.is_file())
    assert unpack_dataset(b"not a tar", "d1") == str(copy.parent) + "/"  # unpacked once per node and digest
    assert [p.name for p in copy.parent.parent.iterdir()] == ["d1"]  # no staging folder left
    linked = tmp_path / "linked"
    linked.mkdir()
    for path in folder.iterdir():
        (linked / path.name).symlink_to(path)
    with tarfile.open(fileobj=io.BytesIO(pack_folder(linked))) as tar:  # a linked file travels as its content
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == sorted(f"linked/{p.name}" for p in folder.iterdir())


def test_ray_options_need_ray_and_go_with_it(tmp_path, data_path, capsys, monkeypatch):
    tiny = str(ROOT / "experiments" / "tiny.yaml")
    base = ["reproduce", tiny, "--results", str(tmp_path / "r"), "--data-path", str(data_path)]
    for extra, needle in ((["--cpus-per-run", "2"], "--cpus-per-run is what each run asks of a Ray cluster"),
                          (["--ray", "--jobs", "2"], "with --ray the cluster places the runs"),
                          (["--ray", "--report-only"], "--report-only runs nothing"),
                          (["--ray", "--cpus-per-run", "0"], "--cpus-per-run: expected a number of CPUs above 0"),
                          (["--ray", "--gpus-per-run", "0.00001"], "in steps of 0.0001, got 1e-05"),
                          (["--report-only", "--gpus-per-run", "1"], "give it with --ray")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err
    assert main(["reproduce", "--results", str(tmp_path / "r")]) == 2
    assert "reproduce: give the experiment file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as without the extra: `import ray` fails
    # `--ray EXP.yaml` (the flag before the file) is --ray without an address, not a cluster named tiny.yaml
    assert main(["reproduce", "--ray", tiny, "--results", str(tmp_path / "r"), "--data-path", str(data_path)]) == 2
    assert "--ray needs Ray" in capsys.readouterr().err
    assert main([*base, "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --ray needs Ray, which is not installed: pip install -e '.[ray]' "
                                        "in this package's checkout (or pip install 'mmrec-ld4mrec[ray]')"], err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_run_no_node_can_hold_is_refused_before_anything_runs(cluster, tmp_path, data_path, capsys):
    exp = _long_run(tmp_path, "1", epochs=2)
    results = tmp_path / "r"
    assert main(["reproduce", str(exp), "--results", str(results), "--data-path", str(data_path),
                 "--ray", cluster.address, "--cpus-per-run", "4"]) == 2
    err = capsys.readouterr().err
    assert "no node of the cluster has 4 CPU(s) and 0 GPU(s) for one run" in err, err
    assert not (results / "registry.lmdb").exists()


@pytest.mark.slow
def test_a_large_dataset_is_read_at_the_data_path_on_the_nodes(cluster, tmp_path, data_path):
    from mmrec_ld4mrec.study.experiment import load_experiment
    from mmrec_ld4mrec.study.ray_runs import RayOptions
    from mmrec_ld4mrec.study.reproduce import reproduce, resolve_data_path

    results = tmp_path / "r"
    exp = resolve_data_path(load_experiment(_long_run(tmp_path, "1", epochs=2)), results, str(data_path))
    log = tmp_path / "sweep.log"
    with open(log, "w") as stream:
        counts = reproduce(exp, results, stream=stream, ray=RayOptions(address=cluster.address, ship_limit=0))
    assert counts["done"] == 1, log.read_text()
    assert "synthetic: read at" in log.read_text() and "that path must be on every node" in log.read_text()
    [record] = _records(results).values()
    assert record["result"]["config"]["data_path"] == exp.data_path
    assert json.loads(json.dumps(record))["node"]
