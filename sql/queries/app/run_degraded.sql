-- What a compose run's committed images lost: objects replaced by their fallback segment
-- (unreadable pixels), planned objects dropped, and of those the ones the final pixels do not show.
SELECT count(*) FILTER (WHERE replaced > 0) AS images_with_replaced_segments,
       coalesce(sum(replaced), 0)::BIGINT AS replaced,
       coalesce(sum(dropped), 0)::BIGINT AS dropped,
       coalesce(sum(unseen), 0)::BIGINT AS unseen
FROM committed_images WHERE fingerprint = $fingerprint;
