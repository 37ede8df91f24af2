# Added by mmrec-ld4mrec: MMRec's get_model('EASE') imports models.ease (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.ease import EASE  # noqa: F401
