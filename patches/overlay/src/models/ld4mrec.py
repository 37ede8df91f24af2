# Added by mmrec-ld4mrec: MMRec's get_model('LD4MRec') imports models.ld4mrec.
# The model lives in the mmrec_ld4mrec package and subclasses MMRec's GeneralRecommender.
from mmrec_ld4mrec.mmrec.shims import apply as _apply_shims

_apply_shims()

from mmrec_ld4mrec.models.ld4mrec import LD4MRec  # noqa: E402

__all__ = ["LD4MRec"]
