"""Use cases. They take an AsyncSession, check rights, raise AppError, flush but never commit."""
