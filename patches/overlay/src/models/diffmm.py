# Added by mmrec-ld4mrec: MMRec's get_model('DiffMM') imports models.diffmm (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.diffmm import DiffMM  # noqa: F401
