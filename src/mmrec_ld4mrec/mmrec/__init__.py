"""Everything that touches an MMRec checkout: where a model's base class comes from
(``host``), runtime shims for today's stack, the overlay installer and the driver that runs
MMRec's own pipeline. The model math (``mmrec_ld4mrec.ld4mrec``) never imports from here."""
