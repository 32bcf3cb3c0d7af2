"""The corpus stage: read posts as platforms export them, clean, deduplicate, scrub, thread."""
