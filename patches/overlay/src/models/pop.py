# Added by mmrec-ld4mrec: MMRec's get_model('Pop') imports models.pop (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.pop import Pop  # noqa: F401
