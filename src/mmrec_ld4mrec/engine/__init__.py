"""The standalone engine: MMRec's protocol (layout, config layering, full ranking,
metrics, early stopping) without an MMRec checkout."""
