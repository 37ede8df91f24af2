# Added by mmrec-ld4mrec: MMRec's get_model('SimGCL') imports models.simgcl (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.simgcl import SimGCL  # noqa: F401
