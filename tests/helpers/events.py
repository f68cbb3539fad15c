"""What tests expect of event payloads, stated once for the modules that check them."""

# The fields of a submission.reviewed payload, whether one form was reviewed or many at once.
REVIEWED_FIELDS = frozenset(
    {"id", "submission_id", "campaign_id", "agency_id", "from", "to", "reason", "reviewed_at"}
)
