"""``mmrec-ld4mrec prepare``: from a raw release or a published split to MMRec's layout.

Every importer validates its input and writes into a temporary folder that is renamed into
place only on success; an existing dataset folder is replaced only with ``--overwrite``."""
