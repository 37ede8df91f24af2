# Added by mmrec-ld4mrec: MMRec's get_model('LD4MRecPaper') imports models.ld4mrecpaper (the paper's reading).
from mmrec_ld4mrec.models.ld4mrec import LD4MRecPaper  # noqa: F401
