"""Accord on several processes: K workers behind a proxy that routes each actor's key to one.

- `placement`: which worker hosts a key (rendezvous hashing);
- `ports`: a free port, and whether one is taken;
- `caddy`: the proxy's config, generated from the sharding key's template (chat/sharding.py);
- `supervisor`: the `Cluster` that starts, watches and stops the processes (`processes`: how
  one ended, its log, stopping them);
- `nats`: a NATS JetStream cluster, the actors' replicated log (`--replicated`);
- `worker`: what each worker process runs;
- `python -m accord_app.cluster`: the command line (`make cluster`).

Which worker hosts a key is decided by rendezvous hashing (`placement`), the same rule in the
proxy and in the workers, so a worker refuses a request meant for another.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord_app.cluster.processes import Exited
    from accord_app.cluster.supervisor import Cluster, ClusterError

__all__ = ["Cluster", "ClusterError", "Exited"]


def __getattr__(name: str) -> Any:
    # Loaded when asked: the small modules here (ports, placement) are imported by the app and
    # the catalog, which must not pull in the supervisor (and it imports the kit's PostgreSQL).
    if name in __all__:
        from accord_app.cluster import supervisor

        return getattr(supervisor, name)
    raise AttributeError(f"module 'accord_app.cluster' has no attribute {name!r}")
