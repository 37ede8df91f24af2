"""Everything that touches an MMRec checkout: runtime shims, the overlay installer and the
driver that runs MMRec's own pipeline. The model math never imports from here."""
