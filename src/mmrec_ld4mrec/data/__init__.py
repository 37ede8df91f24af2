"""Datasets: ``mmrec-ld4mrec prepare`` importers from a raw release or a published split to
MMRec's layout, the layout writer, k-core filtering, item-feature files, the embedded
``synthetic`` dataset and the restricted unpickler for published pickles.

Every importer validates its input and writes into a temporary folder that is renamed into
place only on success; an existing dataset folder is replaced only with ``--overwrite``."""
