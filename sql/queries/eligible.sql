-- Segments a job may draw from: the quality filter view, then the job's sources, vocabulary
-- and predicate. {filter} is a checked view name, {where} the spec's SQL predicate; the
-- source and vocabulary lists arrive as registered tables _job_sources and _job_vocab.
-- Ranks order each category by (subcategory, segment_id): the planner draws ranks in numpy
-- and resolves them here, so plans are reproducible whatever DuckDB's thread count.
CREATE OR REPLACE TEMP VIEW _eligible AS
SELECT segment_id, category_id, subcategory, width, height, alpha_fraction, source,
       source || '/' || split_part(source_uri, '#', 1) AS source_image,
       row_number() OVER (PARTITION BY category_id ORDER BY subcategory NULLS FIRST, segment_id) - 1 AS rank
FROM {filter}
WHERE (NOT EXISTS (SELECT 1 FROM _job_sources) OR source IN (SELECT name FROM _job_sources))
  AND (NOT EXISTS (SELECT 1 FROM _job_vocab) OR category IN (SELECT name FROM _job_vocab))
  AND ({where});
