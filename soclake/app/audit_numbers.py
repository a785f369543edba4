"""The audit page's numbers and plots, taken from soclake.outputs.audit as `soclake audit`
computes them (the one place the app touches the audit module, so a change to its API is
adapted here). Computed once per choice of vocabulary, job, filter and threshold until the
lake changes."""
from __future__ import annotations

from soclake.app import guard
from soclake.app.state import LakeView
from soclake.errors import SoclakeError
from soclake.outputs import audit

VOCABULARIES = ("lvis", "coco", "none")


def numbers(view: LakeView, vocab: str = "lvis", job: str | None = None, filter_name: str | None = None,
            min_segments: int = 10) -> dict:
    """{"result": what `soclake audit` writes to its JSON file, "plots": [{"title", "png"}]}.
    The filter defaults as `soclake audit`'s does: the job's own, else filter_0."""
    if vocab not in VOCABULARIES:
        raise guard.bad(f"vocab={vocab[:40]!r} must be one of {', '.join(VOCABULARIES)}")
    if job is not None:
        guard.job_name(job)

    def make() -> dict:
        with view.locked() as lake:
            try:
                result = audit.run_audit(lake, None if vocab == "none" else vocab, job, min_segments, filter_name)
            except SoclakeError as e:
                raise guard.bad(str(e)) from None
        plots = [{"title": t, "png": png} for t, png in audit.plots(result)]  # the report's own figures
        return {"result": result, "plots": plots}
    return view.remember(("audit", vocab, job, filter_name, min_segments), make)
