-- Where each segment's gallery thumbnail is: its smallest pyramid level whose longest side is
-- at least {side} px (levels are stored largest first), else its largest; sorted by segment_id
-- for the app's in-memory index (one pass over the segments, once per change of the table).
SELECT segment_id, lv.pack AS pack, lv.offset AS offset, lv.length AS length, lv.side AS side
FROM (SELECT segment_id, coalesce(list_filter(levels, lambda x: x.side >= {side})[-1], levels[1]) AS lv FROM segments)
ORDER BY segment_id;
