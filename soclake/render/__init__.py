"""The renderer: a pure function of one plan row and the pool's bytes (compose), blend modes
(blend) and exact annotations from final pixels (annotate)."""
