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
