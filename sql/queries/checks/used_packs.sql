-- Every pack a table row points to (soclake verify: the packs on disk that are not here are orphans).
SELECT DISTINCT lv.pack AS pack FROM segments, unnest(levels) AS t(lv)
UNION
SELECT DISTINCT pack FROM backgrounds;
