-- How many rows of {view} pass the gallery's filters (pool_filters.sql).
SELECT count(*) AS segments
FROM {view}
{filters};
