"""Language: scene graphs built from a sample's annotations, referring expressions as small
programs over them (kept only when re-executing the program gives the referent set the
bucket claims), captions and QA. Exact by construction; no model needed."""
