-- The integer segment key (schemas/segments.json segment_key) of a content id: its first 16
-- hex digits as a signed 64-bit integer, order-preserving. Ingest stores it; queries derive it
-- with this macro for parts written before the column existed (where it reads as NULL).
CREATE OR REPLACE MACRO segment_key_of(id) AS
    (('0x' || left(id, 16))::UHUGEINT::HUGEINT - 9223372036854775808)::BIGINT;
