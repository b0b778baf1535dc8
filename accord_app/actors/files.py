"""Open files: each awake actor holds two (its database and its write-ahead log), and so does
each connection a server keeps, so a process's limit on open files bounds them both."""

FALLBACK_LIMIT = 1024


def open_files_limit() -> int:
    """This process's soft limit on open files (RLIMIT_NOFILE); a guess where there is none."""
    try:
        import resource  # POSIX only
    except ImportError:
        return FALLBACK_LIMIT
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FALLBACK_LIMIT if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def raise_open_files_limit() -> int:
    """Raise the soft limit to the hard one, as far as the system allows; return the limit.

    Many systems start processes at 1024 open files although they allow far more: a server
    with thousands of connections and actors needs them."""
    try:
        import resource  # POSIX only
    except ImportError:
        return FALLBACK_LIMIT
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (hard, 1_048_576, 65_536, 10_240):  # macOS refuses RLIM_INFINITY
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or wanted <= hard):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
                break
            except (ValueError, OSError):
                continue
    return open_files_limit()
