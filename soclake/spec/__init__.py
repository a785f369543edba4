"""Job specs: the spec as data (model), value rules shared with mix manifests (rules), the
[variations] numbering (variations), loading and cross-key checks (load), and the code version
and fingerprint that name a job's outputs (identity)."""
