"""Field quality: screening forms as they are stored, review at scale, re-checks, supervision."""
