"""What a lake gives back: exports (COCO, panoptic, ODVG), the audit report, verification and
repair, `show` pictures, the HTTP server, printed tables, and training feedback loading."""
