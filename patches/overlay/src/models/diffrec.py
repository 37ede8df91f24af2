# Added by mmrec-ld4mrec: MMRec's get_model('DiffRec') imports models.diffrec (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.diffrec import DiffRec  # noqa: F401
