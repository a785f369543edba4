-- How many samples a run committed (the images grid's total).
SELECT coalesce(sum(samples), 0)::BIGINT AS samples FROM manifest WHERE fingerprint = $fingerprint AND stage = $stage;
