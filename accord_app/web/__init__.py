"""The HTTP edge every route sits behind: middleware (limits, the cluster's headers, ids written
one way), the error shape, allowed origins, the frontend's files, the OpenAPI document and the
fast WebSocket path."""
