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
CREATE OR REPLACE VIEW distractors AS
    SELECT * FROM segments WHERE is_distractor;

-- Per source: whether it has quality flags at all, and how many of its labelled segments each
-- filter keeps. A source without flags (folders, coco, sod, parquet without flag columns)
-- appears only in filter_0.
CREATE OR REPLACE VIEW source_filters AS
    -- one pass over the labelled segments (each filter's predicate as in its view above)
    WITH base AS (SELECT source, any_value(layout) AS layout, count(*) AS filter_0,
                         count(*) FILTER (WHERE is_instance IS NOT NULL OR integrity IS NOT NULL
                                            OR quality_regularity IS NOT NULL) AS flagged,
                         count(*) FILTER (WHERE is_instance IS TRUE) AS filter_1,
                         count(*) FILTER (WHERE integrity IS TRUE) AS filter_2,
                         count(*) FILTER (WHERE quality_regularity IS TRUE) AS filter_3,
                         count(*) FILTER (WHERE is_instance IS TRUE AND integrity IS TRUE
                                            AND quality_regularity IS TRUE) AS filter_4
                  FROM filter_0 GROUP BY source)
    SELECT source, layout, flagged > 0 AS has_quality_flags, flagged, filter_0,
           filter_1, filter_2, filter_3, filter_4
    FROM base
    ORDER BY 1;
