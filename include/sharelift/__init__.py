"""sharelift: migrate NFS exports, SMB shares and local folders into OSS buckets.

This package is the Airflow-free core. DAGs and plugins only wire it together.
"""

__version__ = "0.1.0"
