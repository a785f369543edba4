"""`soclake audit`: what the pool (and a composed job) is missing, what is wrong with it, and
what to generate next. numbers gathers the figures from sql/50_audit.sql, terminal prints them,
html writes the report, suggest writes the compose spec that fills the gaps."""
from soclake.outputs.audit.html import plots, write_report
from soclake.outputs.audit.numbers import run_audit
from soclake.outputs.audit.suggest import suggest_spec
from soclake.outputs.audit.terminal import print_summary

__all__ = ["plots", "print_summary", "run_audit", "suggest_spec", "write_report"]
