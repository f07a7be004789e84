"""The deployment files (docker-compose.yaml), run natively on 127.0.0.1 for the tests."""
