"""The object store (any S3 API: SeaweedFS on the local platform, MinIO or AWS S3 in
production) as the components read and write it."""
