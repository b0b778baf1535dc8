"""Accord on several processes: K workers behind a proxy that routes each actor's key to one.

- `caddy`: the proxy's config, generated from the sharding key's template (chat/sharding.py);
- `supervisor`: the `Cluster` that starts, watches and stops the processes;
- `worker`: what each worker process runs;
- `python -m accord_app.cluster`: the command line (`make cluster`).

Which worker hosts a key is decided by rendezvous hashing (accord_app/placement.py), the same
rule in the proxy and in the workers, so a worker refuses a request meant for another.
"""

from accord_app.cluster.supervisor import Cluster, ClusterError, Exited

__all__ = ["Cluster", "ClusterError", "Exited"]
