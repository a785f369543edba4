"""Shard-in, shard-out stages: the Stage interface and registry (base), the stage job runner
(runner), relighting (relight/) and referring expressions, captions and QA (refexp/)."""
