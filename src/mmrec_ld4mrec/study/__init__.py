"""The study harness: experiment files and their resumable sweep (``reproduce``,
``run_worker``), the LMDB results registry, the paper's tables, figures and report, the
staged exploration, mean ± std summaries and the speed benchmark."""
