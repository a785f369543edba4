-- Quality filters over segments, usable by name in job specs ([pool] filter = "filter_4").
-- SOC's quality flags: IsInstance, Integrity, QualityAndRegularity. A flag that is unknown
-- (NULL: the source shipped no quality file) does not pass a filter that asks for it.
-- Distractor cut-outs are never labelled objects, so the filters exclude them.
CREATE OR REPLACE VIEW filter_0 AS
    SELECT * FROM segments WHERE NOT is_distractor;
CREATE OR REPLACE VIEW filter_1 AS
    SELECT * FROM filter_0 WHERE is_instance IS TRUE;
CREATE OR REPLACE VIEW filter_2 AS
    SELECT * FROM filter_0 WHERE integrity IS TRUE;
CREATE OR REPLACE VIEW filter_3 AS
    SELECT * FROM filter_0 WHERE quality_regularity IS TRUE;
CREATE OR REPLACE VIEW filter_4 AS
    SELECT * FROM filter_0 WHERE is_instance IS TRUE AND integrity IS TRUE AND quality_regularity IS TRUE;
-- Whether a source has quality flags at all: any of its labelled segments carries one (a source
-- ingested without a quality file has none). Decided from the flag columns, whatever the layout.
CREATE OR REPLACE VIEW source_quality_flags AS
    SELECT source, bool_or(is_instance IS NOT NULL OR integrity IS NOT NULL OR quality_regularity IS NOT NULL)
               AS has_quality_flags
    FROM filter_0 GROUP BY source;
-- [pool] filter = "auto": filter_4 on the sources that have quality flags, filter_0 on the others
-- (a SOC release with or without its quality file runs unchanged).
CREATE OR REPLACE VIEW filter_auto AS
    SELECT f.* FROM filter_0 f JOIN source_quality_flags q USING (source)
    WHERE NOT q.has_quality_flags
       OR (f.is_instance IS TRUE AND f.integrity IS TRUE AND f.quality_regularity IS TRUE);
CREATE OR REPLACE VIEW distractors AS
    SELECT * FROM segments WHERE is_distractor;

-- Per source: whether it has quality flags at all, and how many of its labelled segments each
-- filter keeps. A source without flags (folders, coco, sod, parquet without flag columns)
-- appears only in filter_0.
CREATE OR REPLACE VIEW source_filters AS
    WITH base AS (SELECT source, any_value(layout) AS layout, count(*) AS filter_0,
                         count(*) FILTER (WHERE is_instance IS NOT NULL OR integrity IS NOT NULL
                                            OR quality_regularity IS NOT NULL) AS flagged
                  FROM filter_0 GROUP BY source),
         f1 AS (SELECT source, count(*) AS n FROM filter_1 GROUP BY source),
         f2 AS (SELECT source, count(*) AS n FROM filter_2 GROUP BY source),
         f3 AS (SELECT source, count(*) AS n FROM filter_3 GROUP BY source),
         f4 AS (SELECT source, count(*) AS n FROM filter_4 GROUP BY source)
    SELECT base.source, base.layout, base.flagged > 0 AS has_quality_flags, base.flagged, base.filter_0,
           coalesce(f1.n, 0) AS filter_1, coalesce(f2.n, 0) AS filter_2,
           coalesce(f3.n, 0) AS filter_3, coalesce(f4.n, 0) AS filter_4
    FROM base LEFT JOIN f1 USING (source) LEFT JOIN f2 USING (source)
              LEFT JOIN f3 USING (source) LEFT JOIN f4 USING (source)
    ORDER BY 1;
