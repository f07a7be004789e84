# The sharelift image of docker-compose.yaml: Airflow 3.3 with sharelift (editable, so the
# mounted dags/ and plugins/ and this source agree) and the Celery provider, plus the
# Debian packages sharelift's NFS client builds against and the demo's file servers.
# Not built on the development machines (no Docker there); tests/deployment/compose.py
# runs the same commands with the local installation instead.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc pkg-config libnfs-dev \
      nfs-ganesha nfs-ganesha-vfs rpcbind samba samba-vfs-modules curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/sharelift-work /data/ossd \
 && chown airflow:0 /opt/sharelift-work /data/ossd
# (a fresh named volume takes the owner of the folder it is mounted on)

USER airflow
COPY --chown=airflow:0 . /opt/sharelift
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -e "/opt/sharelift[celery]"
