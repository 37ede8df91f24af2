# Added by mmrec-ld4mrec: MMRec's get_model('Pop') imports models.pop.
from mmrec_ld4mrec.mmrec.shims import apply as _apply_shims

_apply_shims()

from mmrec_ld4mrec.models.pop import Pop  # noqa: E402

__all__ = ["Pop"]
