"""Where bytes come from and go to: S3, HTTP(S), files, archives, atomic publication."""
