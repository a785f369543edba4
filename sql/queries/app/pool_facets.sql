-- The values the gallery's filters offer: sources and dominant colours with their segment
-- counts (one pass over segments).
SELECT 'source' AS facet, source AS value, count(*) AS segments FROM segments GROUP BY source
UNION ALL
SELECT 'colour', dominant_color, count(*) FROM segments GROUP BY dominant_color
ORDER BY facet, segments DESC, value;
