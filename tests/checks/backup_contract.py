"""The details keys every backup source reports (read by /api/backup-status and the metrics)."""

BACKUP_KEYS = frozenset(
    {
        "last_backup_at",
        "age_seconds",
        "rpo_seconds",
        "within_rpo",
        "size_bytes",
        "location",
        "verified",
        "verified_by",
        "bad_files",
    }
)
