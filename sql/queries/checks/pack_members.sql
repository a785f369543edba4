-- Every pack member a table row points to (soclake verify): segment pyramid levels and
-- backgrounds, with the size the decoded member must have, and whether its pixels are the
-- ones its id hashes (`whole`: a background, or a segment's native level, whose size is the
-- crop's; smaller levels are resized from it). Not read by the planner.
SELECT 'segment' AS kind, segment_id AS id, lv.pack AS pack, lv."offset" AS "offset", lv.length AS length,
       lv.width AS width, lv.height AS height, (lv.width = width AND lv.height = height) AS whole
FROM segments, unnest(levels) AS t(lv)
UNION ALL
SELECT 'background', background_id, pack, "offset", length, width, height, true
FROM backgrounds
ORDER BY pack, "offset", kind, id;
