"""A ``tune`` worker with a fake, fast run (no training) for the study tests:

    python -m tests.study.tune_worker STORAGE TRIALS HEARTBEAT LOG [HANG_ON_CALL]

Each run sleeps briefly, appends its parameters and process id to LOG (one JSON line) and
scores 1 - |log10(lr) + 3|; the HANG_ON_CALL-th call of this process sleeps for a minute
instead, so a test can kill the worker inside a trial.
"""

import json
import math
import os
import sys
import time

from mmrec_ld4mrec.study.tune import Dimension, TuneRequest, tune


def main(storage: str, trials: int, heartbeat: float, log: str, hang_on_call: int = 0) -> None:
    calls = {"n": 0}

    def fake_run(model, dataset, config, on_evaluation=None):
        calls["n"] += 1
        if calls["n"] == hang_on_call:
            time.sleep(60)
        time.sleep(0.3)
        with open(log, "a") as handle:
            handle.write(json.dumps({"lr": config["learning_rate"], "pid": os.getpid()}) + "\n")
        score = 1.0 - abs(math.log10(config["learning_rate"]) + 3.0)
        return {"valid": {"Recall@20": score}, "test": {"Recall@20": 0.0, "NDCG@20": 0.0}, "best_epoch": 0}

    request = TuneRequest(model="LD4MRec", dataset="synthetic", trials=trials, storage=storage, study_name="s",
                          settings={}, seeds=[1], space=[Dimension("learning_rate", "log_float", 1e-5, 1e-1)],
                          heartbeat_seconds=heartbeat, grace_seconds=4 * heartbeat)
    tune(request, run_fn=fake_run)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], *(int(a) for a in sys.argv[5:]))
