# Added by mmrec-ld4mrec: MMRec's get_model('LD4MRec') imports models.ld4mrec (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.ld4mrec import LD4MRec  # noqa: F401
