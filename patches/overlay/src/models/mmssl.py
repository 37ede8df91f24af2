# Added by mmrec-ld4mrec: MMRec's get_model('MMSSL') imports models.mmssl (shims come from utils/__init__.py).
from mmrec_ld4mrec.models.mmssl import MMSSL  # noqa: F401
