"""mmrec-ld4mrec: LD4MRec for MMRec, with a standalone engine that follows MMRec's protocol."""

__version__ = "0.1.0"
